"""Non-linear functions of a transformer in fixed point on secret-shared tensors, with plaintext twins.

exp, reciprocal, rsqrt, softmax (exact and PUMA-style), GeLU, SiLU, LayerNorm and RMSNorm, built from the
ring protocols (Beaver products, truncation, MSB, bit selection). Every approximation knob sits in one
:class:`NonlinearConfig` (``Session(approx=...)`` or a ``config=`` argument). Every public function is
registered with its declared cost; where that cost depends on the configuration, the entry's ``dims``
reads the configuration of the actual call, so the declaration is exact for any configuration.

Fixed-point conventions used throughout (f = fractional bits of the input):

* a "product" is a Beaver product followed by one truncation (floor, or floor + 1 ULP);
* a linear combination with public real coefficients is formed at double scale (ring products by the
  encoded coefficients are local) and truncated once;
* polynomials are evaluated in z = x / 4, which is x's ring integer read at scale f + 2 (no truncation), so
  that powers of z stay below 1 and coefficients near 1 keep their precision after encoding.

Truncations follow the engine: exact floor in the ideal backend, floor or floor + 1 (stochastic rounding,
unbiased) in the share backend. No rounding offset is added: it would un-bias the ideal backend but bias the
real protocols by half a unit per truncation, which the squarings of exp amplify 2^t-fold.

Each approximation has a twin in plain numpy (:class:`Twin`, ``twin_*``): the same steps on the same
fixed-point grid with floor truncation, carrying a bound on how far an MPC run can be from it (every
truncation may add one ULP; input differences propagate through products). The ideal backend equals the
twin exactly; the share backend stays within the bound. The docstrings state each function's domain
(derived from the ring: where a comparison's difference or a truncated value would leave its range; checked
under ``Session(check_domain=True)``) and its error against the true function at f = 16 and at K = 32
(f = 8): measured on the twin (exhaustively for the elementwise functions at f = 8) or derived for any f
(``reciprocal_bound``, ``rsqrt_bound``, ``layernorm_bound``, ``rmsnorm_bound``, softmax at K = 32).
tests/test_nonlinear.py and tests/test_nonlinear_properties.py check them.
Files: ``config`` (NonlinearConfig, constants, shared helpers), ``costs`` (declared-cost composition),
``exponential`` (exp), ``recip`` (reciprocal, rsqrt, normalisation, Goldschmidt; ``reciprocal_bound``,
``rsqrt_bound``), ``softmaxes`` (softmax_exact, softmax_puma, softmax), ``activations`` (gelu, silu),
``norms`` (layernorm, rmsnorm; ``layernorm_bound``, ``rmsnorm_bound``), ``twin`` (Twin, ``twin_*``).
"""
from .config import (
    EXP_METHODS,
    GELU_LOW,
    GELU_MID,
    GELU_T0,
    GELU_T1,
    GELU_T2,
    PADE_C,
    PADE_E0,
    PADE_UMAX,
    POLY_SHIFT,
    RECIP_C,
    RECIP_E0,
    RECIP_METHODS,
    RSQRT_A,
    RSQRT_B,
    RSQRT_E0,
    SILU_SEG1,
    SILU_SEG2,
    SOFTMAX_METHODS,
    NonlinearConfig,
)
from .costs import BOTH
from .exponential import exp
from .recip import _recip_rel, _rsqrt_rel, reciprocal, reciprocal_bound, rsqrt, rsqrt_bound
from .softmaxes import softmax, softmax_exact, softmax_puma
from .activations import _segment_bits, gelu, silu
from .norms import layernorm, layernorm_bound, rmsnorm, rmsnorm_bound
from .twin import (
    Twin,
    _twin_row_mean,
    twin_exp,
    twin_gelu,
    twin_layernorm,
    twin_reciprocal,
    twin_rmsnorm,
    twin_rsqrt,
    twin_silu,
    twin_softmax,
)
