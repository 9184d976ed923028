"""The sharing-scheme seam: what the engine asks of a scheme, and how a session finds one by name.

The engine (tensors, sessions) knows no protocol. Everything a tensor operator or a session helper needs
that communicates (sharing an input, opening, products, truncation, masking a reusable operand) goes to the
session's scheme object, which the protocol layer supplies. Schemes are found by name through the
``mpsim.schemes`` entry-point group (``pyproject.toml`` registers ``additive``), so the engine never imports
upward; a package of your own can register a scheme the same way. Pass an instance to use one directly.

A scheme implements the methods of :class:`Scheme`; each takes and returns ``SharedTensor``s of one session.
The protocols written once over a scheme's primitives also ask it for its openings (``open``) and for the
correlations a dealer would give (``edabit``, ``dabit``, ``rotation_onehot``: the additive scheme's dealer,
or correlations the parties make among themselves).
"""
from __future__ import annotations

from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "mpsim.schemes"


class Scheme:
    """The primitives a session's tensors dispatch to (see the module docstring)."""

    name = "abstract"
    # Per truncation mode, protocol names of a product with its truncation fused ({"local": {"mul": ...,
    # "matmul": ...}}); in a mode not listed a fixed-point product is the ring product, then the truncation.
    fused_product: dict = {}
    # Whether ``reusable`` masks an operand once for many products (workloads pick their gathers by it).
    reusable_operands = False
    # What a warning about likely truncation failures advises (mpsim/session.py).
    truncation_advice = "use trunc='dealer' or fewer fractional bits"

    def truncation_mode(self, parties: int, ring_bits: int, trunc: str) -> str:
        """Check that this scheme runs with ``parties``, and resolve the session's truncation mode ("auto",
        "local" or "dealer") to the one it uses; ValueError for a combination it cannot run."""
        raise NotImplementedError

    def setup(self, session):
        """Per-session state the scheme keeps (``session.keys``); None when it needs none."""
        return None

    def input(self, session, values, owner: int, frac_bits):
        """Secret-share ``values`` held by party ``owner`` at ``frac_bits`` (None: the session's)."""
        raise NotImplementedError

    def reveal(self, x, to=None):
        """Open an arithmetic sharing to every party (``to=None``) or to one; decoded values."""
        raise NotImplementedError

    def reveal_bits(self, x, to=None):
        """Open a boolean sharing; uint64 words."""
        raise NotImplementedError

    def reusable(self, x):
        """Mask ``x`` once as the right operand of many products; returns the scheme's operand object."""
        raise NotImplementedError

    def is_operand(self, value) -> bool:
        """Whether ``value`` is one of this scheme's reusable operands."""
        return False

    def truncate(self, x, shift: int):
        """x / 2^shift on the fixed-point scale (the session's truncation protocol)."""
        raise NotImplementedError

    def mul(self, x, y):
        """Fixed-point product of two sharings (truncated back to the coarser scale)."""
        raise NotImplementedError

    def mul_public(self, x, value):
        """Fixed-point product with a public real array."""
        raise NotImplementedError

    def matmul(self, x, y):
        raise NotImplementedError

    def matmul_public(self, x, value, public_on_left: bool):
        raise NotImplementedError

    def matmul_operand(self, x, operand):
        """x @ W for a reusable operand W of this scheme."""
        raise NotImplementedError

    def approx_config(self):
        """The default approximation knobs of the non-linear protocols (an object with ``as_dict()``)."""
        raise NotImplementedError


def available() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def load_scheme(scheme) -> Scheme:
    """A scheme instance from a name registered under ``mpsim.schemes``, or the instance itself."""
    if isinstance(scheme, Scheme):
        return scheme
    if not isinstance(scheme, str):
        raise TypeError(f"scheme must be a name or a Scheme instance, got {scheme!r}")
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == scheme]
    if not found:
        names = available()
        hint = "" if names else " (none is registered: install mpsim with `pip install -e .`)"
        raise ValueError(f"unknown scheme {scheme!r}; choose one of {names}{hint}")
    return found[0].load()()
