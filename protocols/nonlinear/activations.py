"""GeLU and SiLU (``protocols.nonlinear``): piecewise polynomials on segments chosen by comparisons."""
from __future__ import annotations

import numpy as np

from mpsim.tensor import SharedTensor, stack

from ..boolean import not_, xor
from ..fxp import truncate
from ..registry import call, composed_except, protocol
from .config import (GELU_LOW, GELU_MID, GELU_T0, GELU_T1, GELU_T2, POLY_SHIFT, SILU_SEG1, SILU_SEG2,
                     _check_ring_range, _enc, _example_input, _fixed, _lin_raw, _mul, _relabel)
from .costs import _piecewise_cost

def _segment_bits(x: SharedTensor, thresholds):
    """[x < t0], [x < t1], [x > t2] from one msb call on stacked differences."""
    t0, t1, t2 = thresholds
    bits = call("msb", stack([x - t0, x - t1, (-x) + t2]))
    return bits[0], bits[1], bits[2]


def _check_piecewise_domain(x: SharedTensor, t0: float, t2: float, what: str) -> None:
    """Under check_domain: x - t0 and t2 - x stay below 2^(K-1) ring units (see gelu's Domain)."""
    half = 1 << (x.session.ring.bits - 1)
    _check_ring_range(x, -half + _enc(t2, x.frac) + 1, half + _enc(t0, x.frac) - 1, what,
                      f"the comparisons of x with {t0} and {t2} would wrap the ring")


def _piecewise(x, b0, b1, b2, low, mid):
    """b2 x + (b0 xor b1) low + NOT(b1 xor b2) mid, one select call on the stacked pieces."""
    bits = stack([b2, xor(b0, b1), not_(xor(b1, b2))])
    return call("bit_select", bits, stack([x, low, mid])).sum(axis=0)


@protocol(
    "gelu",
    scheme=composed_except("fss"),  # the FSS suite's own: protocols/fss
    cost=_piecewise_cost(squares=1, stacked=2, plain=0),  # z^2; [z, z^2] z^2; [z^2, z^4] z^4
    ref="PUMA (Dong et al. 2023), piecewise polynomial GeLU; coefficients our own minimax fit",
    dims=lambda x: {"n": x.size},
    example=_example_input(np.linspace(-5.0, 5.0, 16).reshape(2, 8)),
    vars_doc="n = elements",
)
def gelu(x: SharedTensor) -> SharedTensor:
    """GeLU(x) = x Phi(x) by a piecewise polynomial on segments chosen by 3 comparisons.

    Pieces: 0 for x < -4; a cubic on [-4, -2); 0.5 x + an even octic a0 + a2 x^2 + ... + a8 x^8 on
    [-2, 3.125]; x for x > 3.125.
    Fitting: x Phi(x) - x/2 = (x/2) erf(x/sqrt 2) is even, so the middle piece is 0.5 x plus an even
    polynomial fitted on [0, 3.125] (valid on [-3.125, 3.125]); both polynomials are minimax fits by Lawson's
    iteratively reweighted least squares (5000 steps, 20001 grid points); thresholds chosen so the pieces'
    errors balance (octic 0.0024 on the middle, cubic 0.00036 on [-4, -2), |GeLU(x) - x| <= 0.0028 above
    3.125, |GeLU(x)| <= 0.00013 below -4).
    Steps:
      1. [x < -4], [x < -2], [x > 3.125]: one msb call on the three stacked differences.
      2. In parallel: z = x/4 (x's ring integer read at scale f + 2); z^2; [z^3, z^4] = [z, z^2] z^2 (one
         Beaver call); [z^6, z^8] = [z^2, z^4] z^4 (one call); both polynomials in z, coefficients scaled by
         4^k, at double scale, truncated once together.
      3. out = b_hi x + b_low cubic + b_mid octic (one select call on the stacked pieces, summed).
    Rounds: max(1 + log2 K, 3 + 4 TR) + 1: 8 for N = 2, K = 64.
    Comm: 3 msb per element, 7 opened ring elements, a select of 3 bits and 3 elements; TC for 7 truncated
    elements.
    Leaks: nothing beyond the output.
    Ref: PUMA (Dong et al., "PUMA: Secure Inference of LLaMA-7B in Five Minutes", 2023), Sec. on GeLU;
    Lawson's algorithm for minimax fits.

    Domain: -2^(K-1-f) + 3.125 < x < 2^(K-1-f) - 4 (K = 64, f = 16: within 4 of +-2^47; K = 32, f = 8:
    (-8388604.875, 8388604)), i.e. ring integers in [-2^(K-1) + t2 + 1, 2^(K-1) + t0 - 1], t0 = -4 2^f, t2 =
    3.125 2^f. Why: each segment bit is the msb of a difference, right only while the difference stays below
    2^(K-1) ring units. x - t0 = x + 4 wraps once x >= 2^(K-1-f) - 4 (x then reads as below -4 and gets 0);
    t2 - x = 3.125 - x wraps once x <= -2^(K-1-f) + 3.125 (x reads as above 3.125 and is returned as is);
    x - t1 = x + 2 wraps only inside the first sliver. The pieces' own values may wrap, or break their
    truncation's precondition, far outside their segments: the selection multiplies them by 0.
    Session(check_domain=True) raises outside the domain.
    Error (f = 16, on the twin, x in [-20, 20]): <= 0.0029 (the fit's 0.0028 plus under 1e-5 of fixed
    point); outside [-4, 3.125] the pieces are exactly 0 and x, so the error there is the fit's.
    K = 32 (f = 8; every ring value of [-2^10, 2^10] on the twin): <= 0.019 (measured 0.0183 at x = 1.27,
    on the octic: z = x/4 held to f + 2 = 10 bits, and the octic's coefficients scaled by 4^k amplify its
    truncations); 0.0032 on the cubic's segment.
    """
    x = _fixed(x)
    f = x.frac
    F = f + POLY_SHIFT
    _check_piecewise_domain(x, GELU_T0, GELU_T2, "gelu")
    b0, b1, b2 = _segment_bits(x, (GELU_T0, GELU_T1, GELU_T2))
    z = _relabel(x, F)
    z2 = _mul(z, z)
    z34 = _mul(stack([z, z2]), z2)
    z68 = _mul(stack([z2, z34[1]]), z34[1])
    sc = [4.0**k for k in range(9)]
    lo = GELU_LOW
    low = _lin_raw([(z, lo[1] * sc[1]), (z2, lo[2] * sc[2]), (z34[0], lo[3] * sc[3])], F)
    a = GELU_MID
    mid = _lin_raw([(z, 0.5 * sc[1]), (z2, a[1] * sc[2]), (z34[1], a[2] * sc[4]), (z68[0], a[3] * sc[6]),
                    (z68[1], a[4] * sc[8])], F)
    polys = truncate(stack([low, mid]), 2 * F - f) + np.array([lo[0], a[0]]).reshape(2, *([1] * x.ndim))
    return _piecewise(x, b0, b1, b2, polys[0], polys[1])


@protocol(
    "silu",
    scheme=composed_except("fss"),  # the FSS suite's own: protocols/fss
    cost=_piecewise_cost(squares=2, stacked=0, plain=1),  # z^2, z^4 = (z^2)^2, z^6 = z^2 z^4
    ref="MPCache hack_silu (SPU scripts; mpcache.md 8.3), coefficients copied exactly",
    dims=lambda x: {"n": x.size},
    example=_example_input(np.linspace(-9.0, 5.0, 16).reshape(2, 8)),
    vars_doc="n = elements",
)
def silu(x: SharedTensor) -> SharedTensor:
    """SiLU(x) = x sigmoid(x), exactly MPCache's piecewise polynomial (mpcache.md 8.3).

    Pieces: 0 for x < -8; -0.0055465625580307 x^2 - 0.0819767021525476 x - 0.3067541139982155 on [-8, -4);
    0.0002743776353465 x^6 - 0.011113046708173 x^4 + 0.2281430841728270 x^2 + 0.5 x + 0.0085064025895951 on
    [-4, 4]; x for x > 4.
    Steps:
      1. b0 = [x < -8], b1 = [x < -4], b2 = [x > 4]: one msb call on the stacked differences.
      2. In parallel: z = x/4 (x's ring integer read at scale f + 2), z^2, z^4 = (z^2)^2, z^6 = z^2 z^4;
         both polynomials in z (coefficients times 4^k) at double scale, truncated once together.
      3. out = b2 x + (b0 xor b1) seg1 + NOT(b1 xor b2) seg2 (one select call, summed).
    Rounds: max(1 + log2 K, 3 + 4 TR) + 1: 8 for N = 2, K = 64.
    Comm: 3 msb per element, 4 opened ring elements, a select of 3 bits and 3 elements; TC for 5 truncated
    elements.
    Leaks: nothing beyond the output.
    Ref: MPCache's hack_silu (SPU scripts, infer/generation_evaluation.py; mpcache.md 8.3).

    Domain: -2^(K-1-f) + 4 < x < 2^(K-1-f) - 8 (K = 64, f = 16: within 8 of +-2^47; K = 32, f = 8:
    (-8388604, 8388600)): as for ``gelu`` with the thresholds -8 and 4, x - (-8) = x + 8 wraps once x >=
    2^(K-1-f) - 8 (x then gets 0) and 4 - x once x <= -2^(K-1-f) + 4 (x is returned as is).
    Session(check_domain=True) raises outside the domain.
    Error (f = 16, on the twin; the polynomial's own error plus under 5e-5 of fixed point): <= 0.0097 on
    [-4, 4], <= 0.0044 on [-8, -4), <= 0.0027 below -8, and x sigmoid(-x) above 4 (0.072 just above 4, 0.015
    at 6). K = 32 (f = 8; every ring value of [-2^10, 2^10] on the twin): <= 0.016 on [-4, 4] (measured
    0.0151), <= 0.0077 on [-8, -4), <= 0.0027 below -8, x sigmoid(-x) above 4; the fixed point adds up to
    0.0075 to the polynomial (z = x/4 at 10 bits, z^6's coefficient 4^6 times larger).
    """
    x = _fixed(x)
    f = x.frac
    F = f + POLY_SHIFT
    _check_piecewise_domain(x, -8.0, 4.0, "silu")
    b0, b1, b2 = _segment_bits(x, (-8.0, -4.0, 4.0))
    z = _relabel(x, F)
    z2 = _mul(z, z)
    z4 = _mul(z2, z2)
    z6 = _mul(z2, z4)
    c1, c2 = SILU_SEG1, SILU_SEG2
    seg1 = _lin_raw([(z, c1[1] * 4.0), (z2, c1[2] * 16.0)], F)
    seg2 = _lin_raw([(z, 0.5 * 4.0), (z2, c2[1] * 16.0), (z4, c2[2] * 256.0), (z6, c2[3] * 4096.0)], F)
    polys = truncate(stack([seg1, seg2]), 2 * F - f) + np.array([c1[0], c2[0]]).reshape(2, *([1] * x.ndim))
    return _piecewise(x, b0, b1, b2, polys[0], polys[1])
