"""mpsim: an MPC protocol simulator with an exact cost model, for private LLM inference research.

``mpsim.Session`` is the entry point: it owns the dealer, the channel, the ledger and the profiler of one
computation; ``session.input`` makes ``SharedTensor``s, whose numpy-like operators run the protocols in the
top-level ``protocols`` package and count every message.
"""
import os
from importlib.metadata import PackageNotFoundError, version

# numba's parallel kernels and multi-threaded BLAS share this process; without a short spin count the two
# thread pools fight for the cores (a 128^3 matmul measured 30x slower). Must be set before numba starts.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")
# OpenBLAS threads otherwise spin ~0.1 s after each BLAS call and halve a numba kernel started meanwhile
# (measured 14.4 -> 7.3 GMAC/s); effective only if numpy is not imported yet.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from .backend import CountBackendError
from .ledger import Cost
from .session import ScopeNode, Session, TruncationWarning, Unrevealed
from .tensor import SharedTensor, concatenate, stack

try:
    __version__ = version("mpsim")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "Cost", "CountBackendError", "ScopeNode", "Session", "SharedTensor", "TruncationWarning", "Unrevealed",
    "concatenate", "stack", "__version__",
]
