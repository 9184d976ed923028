"""The N-party additive scheme with a trusted dealer (``Session(scheme="additive")``, the default).

Its primitives are the protocols of this package: PRZS input sharing, openings, Beaver products and
matrix products (``protocols.arith``), the session's truncation (``protocols.trunc``), reusable masked
operands (``protocols.reuse``), and the fixed-point compositions of ``protocols.fxp``. Registered for the
engine under the ``mpsim.schemes`` entry point ``additive``.
"""
from __future__ import annotations

from mpsim.scheme import Scheme

from . import fxp
from .fxp import FixedPointProducts
from .arith import reveal, share_input
from .boolean import reveal_bits
from .nonlinear import NonlinearConfig
from .reuse import MaskedOperand, mask_operand
from .trunc import truncate


class AdditiveScheme(FixedPointProducts, Scheme):
    name = "additive"
    reusable_operands = True

    def truncation_mode(self, parties, ring_bits, trunc):
        if trunc == "pair":
            raise ValueError("the additive scheme's truncation pairs come from its dealer: use trunc='dealer'")
        if trunc == "exact":
            raise ValueError("exact truncation uses FSS keys: Session(parties=2, scheme='fss', trunc='exact')")
        if trunc == "local" and parties != 2:
            raise ValueError("local (SecureML) truncation is only correct for 2 parties; use trunc='dealer'")
        # auto: local only where its failure probability is negligible (N = 2, K = 64; mpsim/session.py)
        auto = "local" if parties == 2 and ring_bits == 64 else "dealer"
        return auto if trunc == "auto" else trunc

    def input(self, session, values, owner, frac_bits):
        return share_input(session, values, owner=owner, frac_bits=frac_bits)

    def reveal(self, x, to=None):
        return reveal(x, to=to)

    def reveal_bits(self, x, to=None):
        return reveal_bits(x, to=to)

    def reusable(self, x):
        return mask_operand(x)

    def is_operand(self, value) -> bool:
        return isinstance(value, MaskedOperand)

    def truncate(self, x, shift):
        return truncate(x, shift)

    def matmul_operand(self, x, operand):
        return fxp.matmul_reused(x, operand)

    def open(self, session, op, tensors, widths=None, simulate=None):
        """Open masked values to every party in one call (all-to-all); ``simulate`` as ``Channel.open``."""
        return session._open(op, tensors, widths=widths, simulate=simulate)

    def rotation_onehot(self, session, shape, size):
        """Per index a uniform r in [0, size) and shares of r and of the one-hot e_r: the dealer's."""
        return session.dealer.rotation_onehot(shape, size)

    def edabit(self, session, shape):
        """(arithmetic, XOR) payloads of one uniform r per element: the dealer's edaBits."""
        return session.dealer.edabit(shape)

    def trunc_pair(self, session, shape, shift):
        """Shares of r, (r mod 2^(K-1)) >> shift and r's top bit: the dealer's truncation pair."""
        return session.dealer.trunc_pair(shape, shift)

    def dabit(self, session, shape):
        """(arithmetic, XOR) payloads of one uniform bit per element: the dealer's daBits."""
        return session.dealer.dabit(shape)

    def approx_config(self):
        return NonlinearConfig()
