"""``Session``: one MPC computation among N parties, owning its dealer, channel, ledger and profiler.

There is no module-level state: two sessions can run side by side, and tensors of one cannot be mixed
with tensors of the other. A session fixes the ring (K bits), the fixed-point scale (f fractional bits), the
backend (share / ideal / count), the truncation protocol and the PRG seed.

Truncation (after every fixed-point product):

* ``trunc="local"``: SecureML share-wise truncation, 0 rounds, two parties only. A product of real magnitude
  below 2^m sits at scale 2^(2f), i.e. below 2^l with l = m + 2f, and the result is wrong (off by about
  2^(K-f)) with probability about 2^(l + 1 - K) per element (Mohassel-Zhang 2017, Thm. 1). With K = 64,
  f = 16: m = 4 gives ~2^-27 per element, m = 20 gives ~2^-11. Declare the range with ``max_abs=2**m``
  and the session warns (:class:`TruncationWarning`) when that probability exceeds 2^-20.
* ``trunc="dealer"``: probabilistic truncation with MSB correction (Escudero et al., CRYPTO 2020), 1 round,
  any N, never fails for |x| < 2^(K-2) at scale 2^(2f); the session warns when ``max_abs`` breaks that.
* ``trunc="pair"``: the same truncation with its pair made by the parties themselves (ABY3, which has no
  dealer); ABY3's ``trunc="local"`` is its share truncation, with the local one's failure probability.
* ``trunc="exact"``: the FSS suite's truncation (``scheme="fss"``; eprint 2020/1392): 1 round, a DCF key
  per element, exactly floor(x / 2^d) for |x| < 2^(K-2).
* ``trunc="auto"`` (default): local for N = 2 and K = 64, dealer otherwise (ABY3: local at K = 64, pair at
  K = 32; FSS: local at K = 64, exact at K = 32). Local truncation's failure
  probability 2^(m + 2f + 1 - K) is negligible at K = 64 (2^-31 for |x| <= 1 with f = 16) but not at K = 32,
  where even |x| <= 1 with f = 8 fails with probability 2^-15 per element and a (16, 512) softmax has wrong
  rows; so K = 32 and N > 2 use dealer truncation. An explicit ``trunc="local"`` is honoured and warns
  (:class:`TruncationWarning`) whenever its failure probability, for values up to ``max_abs`` (for |x| <= 1
  when ``max_abs`` is not declared), exceeds 2^-20: always at K = 32 with the default f = 8.

Local, dealer and pair give a result within one unit in the last place (2^-f) of the exact floor of the
product; exact gives the floor.
"""
from __future__ import annotations

import math
import warnings
from contextlib import contextmanager

import numpy as np

from .backend import CountBackendError, PRG, make_backend
from .channel import Channel, Opening
from .dealer import Dealer
from .ledger import Cost, Ledger, cost_of
from .profiler import Profiler
from .scheme import load_scheme
from .ring import Ring
from .tensor import SharedTensor

TRUNC_MODES = ("auto", "local", "dealer", "pair", "exact")
DEFAULT_FRAC_BITS = {64: 16, 32: 8}
LOCAL_TRUNC_WARN_LOG2 = -20  # warn when the per-element failure probability of local truncation exceeds this


class TruncationWarning(UserWarning):
    """The declared value range makes a truncation failure likely."""


def check_frac_bits(frac_bits, ring_bits: int) -> int:
    """``frac_bits`` as an int, or ValueError: an integer f >= 0 with 2f <= K - 2 (a product sits at scale 2^(2f))."""
    if isinstance(frac_bits, bool) or not isinstance(frac_bits, (int, np.integer)) or not 0 <= frac_bits <= ring_bits - 2:
        raise ValueError(f"frac_bits must be an integer in [0, {ring_bits - 2}], got {frac_bits!r}")
    if 2 * frac_bits > ring_bits - 2:
        raise ValueError(
            f"frac_bits={frac_bits} leaves no room for products in a {ring_bits}-bit ring: a product sits at "
            f"scale 2^(2f) and needs 2f <= K - 2 (at most {(ring_bits - 2) // 2} fractional bits; e.g. 8 for K = 32)"
        )
    return int(frac_bits)


class Session:
    """A context manager owning the dealer, the channel, the ledger and the profiler of one computation."""

    def __init__(
        self,
        parties: int = 2,
        ring_bits: int = 64,
        frac_bits: int | None = None,
        seed: int | None = None,
        backend: str = "share",
        trunc: str = "auto",
        max_abs: float | None = None,
        check_domain: bool = False,
        approx=None,
        scheme="additive",
    ):
        if not isinstance(parties, (int, np.integer)) or isinstance(parties, bool) or parties < 2:
            raise ValueError(f"parties must be an integer >= 2, got {parties!r}")
        self.parties = int(parties)
        self.ring = Ring(ring_bits)
        if frac_bits is None:  # 16 for K = 64; 8 for K = 32, whose products need 2f <= 30
            frac_bits = DEFAULT_FRAC_BITS[ring_bits]
        self.frac_bits = check_frac_bits(frac_bits, ring_bits)
        if trunc not in TRUNC_MODES:
            raise ValueError(f"trunc must be one of {TRUNC_MODES}, got {trunc!r}")
        # The sharing scheme's primitives (mpsim/scheme.py): found by name, so the engine imports no protocol.
        self.scheme = load_scheme(scheme)
        # The scheme checks the party count and the truncation mode, and resolves "auto" (additive: local
        # only where its failure probability is negligible, N = 2 and K = 64; module docstring).
        self.trunc = self.scheme.truncation_mode(self.parties, self.ring.bits, trunc)
        self.seed = seed
        self.max_abs = max_abs
        self.check_domain = bool(check_domain)
        # Approximation knobs of the non-linear protocols (protocols.nonlinear.NonlinearConfig); None: defaults.
        self.approx = approx
        self.prg = PRG(seed)
        self.ledger = Ledger(self.parties)
        self.profiler = Profiler()
        self.backend = make_backend(backend, self.ring, self.parties, self.prg)
        self.channel = Channel(self.parties, self.ledger, self.profiler, self.backend)
        self.dealer = Dealer(self.ring, self.backend, self.ledger, self.profiler)
        # Scheme-owned per-session state (ABY3: the pairwise PRF keys of its correlated randomness).
        self.keys = self.scheme.setup(self)
        self.closed = False
        self._warn_about_range()

    # -- configuration -------------------------------------------------------------------------------------
    @property
    def config(self) -> dict:
        return {
            "scheme": self.scheme.name,
            "parties": self.parties,
            "ring_bits": self.ring.bits,
            "frac_bits": self.frac_bits,
            "backend": self.backend.name,
            "trunc": self.trunc,
            "seed": self.seed,
            "max_abs": self.max_abs,
            "check_domain": self.check_domain,
            "approx": self._approx_dict(),
        }

    def _approx_dict(self):
        """The approximation knobs in force (the defaults when none were given)."""
        approx = self.scheme.approx_config() if self.approx is None else self.approx
        return approx.as_dict() if hasattr(approx, "as_dict") else approx

    def truncation_failure_log2(self) -> float:
        """log2 of the per-element failure probability of local truncation, 2^(m + 2f + 1 - K) (``trunc_local``'s
        bound for products below 2^(m + 2f) at scale 2^(2f)), for values up to the declared ``max_abs`` = 2^m, or
        up to 1 (m = 0) when ``max_abs`` is not declared."""
        bound = 1.0 if self.max_abs is None else float(self.max_abs)
        m = math.log2(max(bound, 2.0**-self.frac_bits))
        return m + 2 * self.frac_bits + 1 - self.ring.bits

    def _warn_about_range(self) -> None:
        if self.trunc == "local":
            p = self.truncation_failure_log2()
            if p > LOCAL_TRUNC_WARN_LOG2:
                values = "|x| <= 1 (no max_abs declared)" if self.max_abs is None else f"values up to {self.max_abs}"
                warnings.warn(
                    f"local truncation fails with probability about 2^{p:.1f} per element for {values} "
                    f"(K={self.ring.bits}, f={self.frac_bits}); {self.scheme.truncation_advice}",
                    TruncationWarning,
                    stacklevel=3,
                )
            return
        if self.max_abs is None:
            return
        m = math.log2(max(float(self.max_abs), 2.0**-self.frac_bits))
        if m + 2 * self.frac_bits >= self.ring.bits - 2:
            warnings.warn(
                f"products up to {self.max_abs} exceed the 2^(K-2) bound of {self.trunc} truncation "
                f"(K={self.ring.bits}, f={self.frac_bits}); results will wrap",
                TruncationWarning,
                stacklevel=3,
            )

    # -- context manager -------------------------------------------------------------------------------------
    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.closed = True

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("this session is closed; its ledger can still be read with cost()")

    # -- scopes and costs ------------------------------------------------------------------------------------
    def scope(self, name: str):
        """``with s.scope("layer"):`` tags every message inside with the scope path (scopes nest)."""
        return self.profiler.scope(name)

    def barrier(self) -> None:
        """Start a new phase (a decode step after the setup): every value computed so far counts as available
        now, so rounds within the phase are its own critical path, whatever depth stamps its inputs carry.
        Without it, a product with a masked KV cache made in the setup would start from the setup's depth
        while a fresh input starts from 0, and the phase's distinct depths would overcount its rounds."""
        self.channel.barrier()

    def mark(self) -> int:
        """A position in the ledger, for ``cost(since=mark)``."""
        return len(self.ledger)

    def cost(self, scope: str | None = None, since: int = 0) -> Cost:
        """Exact counters of everything recorded (optionally within ``scope``, or after a ``mark()``).

        ``scope`` matches any contiguous run of path components ("attention/qk" matches
        "layer0/attention/qk/beaver_mul"); start it with "/" to anchor at the root.
        """
        return self.ledger.cost(scope=scope, since=since)

    def cost_tree(self) -> "ScopeNode":
        """The per-scope tree: every node's cost includes its sub-scopes; siblings in execution order (the
        order of their first message), so layer10 follows layer9 and a step reads as it ran."""
        root = ScopeNode("", "", [])
        by_path: dict[str, list] = {}
        for m in self.ledger.messages:
            parts = m.scope.split("/") if m.scope else []
            for i in range(len(parts) + 1):
                by_path.setdefault("/".join(parts[:i]), []).append(m)
        for path in sorted(by_path, key=lambda p: p.count("/")):  # stable: first appearance within a depth
            if not path:
                continue
            parent = root.find(path.rsplit("/", 1)[0] if "/" in path else "")
            parent.children.append(ScopeNode(path.rsplit("/", 1)[-1], path, []))
        root.fill(by_path, self.parties)
        return root

    # -- data in and out ---------------------------------------------------------------------------------------
    def input(self, values, owner: int = 0, frac_bits: int | None = None) -> SharedTensor:
        """Secret-share ``values`` held by party ``owner`` (the scheme's input protocol; additive:
        ``protocols.arith.share_input``)."""
        return self.scheme.input(self, values, owner, frac_bits)

    def reveal(self, x: SharedTensor, to: int | None = None):
        """Open ``x`` to every party (``to=None``) or to one party; counted. Returns decoded values.

        Fixed-point tensors decode to float64, integer tensors (frac 0) to int64. Under the count backend
        the result is a :class:`Unrevealed` placeholder whose values cannot be read.
        """
        return self.scheme.reveal(x, to=to)

    def placeholder(self, shape, owner: int = 0, frac_bits: int | None = None) -> SharedTensor:
        """A secret input known only by its shape, for the count backend (full-size models without data).

        Costs what ``input`` costs; under the share and ideal backends it raises, since they need values.
        """
        if self.backend.has_data:
            raise ValueError(f"placeholder inputs carry no values; the {self.backend.name} backend needs real ones")
        shape = tuple(int(d) for d in shape)
        return self.input(np.broadcast_to(np.zeros((), dtype=np.float64), shape), owner=owner, frac_bits=frac_bits)

    def reusable(self, x: SharedTensor):
        """Mask ``x`` once for reuse as the right operand of many products (additive: ``protocols.reuse``)."""
        return self.scheme.reusable(x)

    def zeros(self, shape, frac_bits: int | None = None) -> SharedTensor:
        """A sharing of zeros (all shares zero: a public constant, no communication)."""
        shape = tuple(shape)
        payload = None
        if self.backend.has_data:
            payload = np.zeros((self.backend.rows,) + shape, dtype=np.uint64)
        return SharedTensor(self, payload, shape, self.frac_bits if frac_bits is None else frac_bits)

    def _work(self, op: str, macs: int = 0, elems: int = 0) -> None:
        """Record the busiest party's local work of a protocol step (for the compute-time model)."""
        self.ledger.record_work(self.profiler.path, op, macs, elems)

    def _open(self, op: str, tensors, to=None, widths=None, simulate=None, route=None, rows=None):
        """Open shared tensors in one channel call; returns (public arrays or None, depth).

        ``widths`` gives bits per element per tensor (default K); ``simulate`` see ``Channel.open``.
        """
        self._check_open()
        widths = widths or [t.width if t.kind == "B" else self.ring.bits for t in tensors]
        items = [Opening(t.payload, t.shape, w, t.depth, t.kind, t.calls) for t, w in zip(tensors, widths)]
        routing = {} if route is None else {"route": route, "rows": rows}  # a scheme's own opening pattern
        return self.channel.open(op, items, to=to, simulate=simulate, **routing)


class Unrevealed:
    """What ``reveal`` returns under the count backend: a shape, and no values."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def _fail(self, *args, **kwargs):
        raise CountBackendError("the count backend holds no data: revealed values cannot be read")

    __array__ = __getitem__ = __float__ = __int__ = __iter__ = __len__ = __bool__ = _fail

    def __repr__(self) -> str:
        return f"Unrevealed(shape={self.shape})"


class ScopeNode:
    """A node of the per-scope cost tree."""

    def __init__(self, name: str, path: str, children: list):
        self.name = name
        self.path = path
        self.children = children
        self.cost = Cost()

    def find(self, path: str) -> "ScopeNode":
        if self.path == path:
            return self
        for child in self.children:
            if path == child.path or path.startswith(child.path + "/"):
                return child.find(path)
        raise KeyError(path)

    def fill(self, by_path: dict, parties: int) -> None:
        self.cost = cost_of(by_path.get(self.path, []), parties)
        for child in self.children:
            child.fill(by_path, parties)

    def walk(self, level: int = 0):
        yield level, self
        for child in self.children:
            yield from child.walk(level + 1)

    def format(self) -> str:
        lines = []
        for level, node in self.walk():
            label = node.name or "(session)"
            lines.append(f"{'  ' * level}{label}: {node.cost}")
        return "\n".join(lines)
