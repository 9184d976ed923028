"""The ABY3 scheme behind the engine's seam (``Session(parties=3, scheme="aby3")``).

Registered for the engine under the ``mpsim.schemes`` entry point ``aby3``. Its correlated randomness is
the pairwise PRF keys of ``prf`` (``session.keys``) and the correlations the parties make from them offline
(``correlations``: edaBits, daBits; ``prf``: rotation one-hots); there is no dealer, so the session's dealer
stays unused.
"""
from __future__ import annotations

from mpsim.scheme import Scheme

from ..fxp import FixedPointProducts
from ..nonlinear import NonlinearConfig
from . import correlations
from .arith import PARTIES, open_values, reveal, share_input, trunc_pr, truncate
from .boolean import reveal_bits, share_bits
from .prf import Keys


class Aby3Scheme(FixedPointProducts, Scheme):
    name = "aby3"
    fused_product = {"local": {"mul": "rep_mul_trunc", "matmul": "rep_matmul_trunc"}}
    truncation_advice = ("use trunc='pair', ring_bits=64 or fewer fractional bits (ABY3's share truncation is "
                         "probabilistic)")

    def truncation_mode(self, parties, ring_bits, trunc):
        """local: ABY3's share truncation (fused into products); pair: truncation pairs made by the parties
        (``trunc_pr``, never wrong for |x| < 2^(K-2)); auto: local at K = 64, pair at K = 32, where share
        truncation fails with probability 2^-15 per element for |x| <= 1 at f = 8."""
        if parties != PARTIES:
            raise ValueError(f"the aby3 scheme is replicated sharing among exactly 3 parties, got parties={parties}")
        if trunc == "dealer":
            raise ValueError("the aby3 scheme has no dealer; its truncations are ABY3's share truncation "
                             "(trunc='local') and pairs made by the parties (trunc='pair')")
        if trunc == "exact":
            raise ValueError("exact truncation uses two-party FSS keys (scheme='fss'); ABY3 has trunc='pair'")
        if trunc == "auto":
            return "local" if ring_bits == 64 else "pair"
        return trunc

    @staticmethod
    def party_rows(parties):
        """Party i holds components i and i + 1 (for the transcript tests' views)."""
        return [(i, (i + 1) % PARTIES) for i in range(parties)]

    @staticmethod
    def coalition(parties):
        """Honest majority: one corrupted party."""
        return 1

    def share_bits(self, session, values, owner, width):
        return share_bits(session, values, owner=owner, width=width)

    def setup(self, session):
        return Keys(session)

    def input(self, session, values, owner, frac_bits):
        return share_input(session, values, owner=owner, frac_bits=frac_bits)

    def reveal(self, x, to=None):
        return reveal(x, to=to)

    def reveal_bits(self, x, to=None):
        return reveal_bits(x, to=to)

    def reusable(self, x):
        raise NotImplementedError("the aby3 scheme has no reusable masked operands: a replicated product needs "
                                  "no mask to reuse (its cost is one reshared output element either way)")

    def truncate(self, x, shift):
        if x.session.trunc == "pair" and shift:
            return trunc_pr(x, shift)
        return truncate(x, shift)  # share truncation; nothing for shift 0

    def trunc_pair(self, session, shape, shift):
        """Shares of r, (r mod 2^(K-1)) >> shift and r's top bit, made by the parties from K daBits."""
        return correlations.trunc_pair(session.keys, shape, shift)

    def matmul_operand(self, x, operand):
        raise NotImplementedError("the aby3 scheme has no reusable masked operands")

    def open(self, session, op, tensors, widths=None, simulate=None):
        """Open masked values to every party: each receives the one component it lacks."""
        return open_values(session, op, tensors, widths=widths, simulate=simulate)

    def rotation_onehot(self, session, shape, size):
        """Replicated sharings of r uniform in [0, size) and of e_r, made by the parties offline."""
        return session.keys.rotation_onehot(shape, size)

    def edabit(self, session, shape):
        """(arithmetic, XOR) replicated payloads of one uniform r per element, made by the parties offline."""
        return session.keys.edabit(shape)

    def dabit(self, session, shape):
        """(arithmetic, XOR) replicated payloads of one uniform bit per element, made by the parties offline."""
        return session.keys.dabit(shape)

    def approx_config(self):
        return NonlinearConfig()
