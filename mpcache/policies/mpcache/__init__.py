"""MPCache (Zeng et al., NeurIPS 2025) under MPC: look-once static eviction, hierarchical cluster selection with a
linear similarity, cluster-level gathering and cross-layer index sharing, every component switchable.

:class:`MPCachePolicy` (``policy.py``) holds the hyperparameters and composes the stages, one module each:
``static.py`` (static eviction at prefill), ``clusters.py`` (cluster summaries and their incremental update),
``similarity.py`` (the scores), ``select.py`` (the public plan and the hierarchical top-k), ``gather.py``
(attending over the picked clusters) and ``sharing.py`` (cross-layer index sharing); ``operands.py`` holds
the local operand helpers they share and ``twin.py`` the plaintext numpy twin :class:`MPCacheTwin`. Facts
about the paper and its reference code come from ``shared/mpcache.md`` (sections 3, 4, 5, 8); the MPC design
choices where the paper is silent are ours and are marked as such.
"""
from .clusters import Clustering, Summary
from .gather import GATHERS, ONEHOTS, Gather
from .policy import MPCachePolicy
from .select import Level, Selection, chooses, extras, fixed_tokens
from .sharing import STEP_KEY, Sharing
from .similarity import SIMILARITIES, Similarity
from .static import CAUSAL_PENALTY, LARGE_PROMPT, STATIC_MODES, StaticEviction
from .twin import MPCacheTwin, TwinStep

__all__ = ["CAUSAL_PENALTY", "Clustering", "GATHERS", "Gather", "LARGE_PROMPT", "Level", "MPCachePolicy",
           "MPCacheTwin", "ONEHOTS", "SIMILARITIES", "STATIC_MODES", "STEP_KEY", "Selection", "Sharing",
           "Similarity", "StaticEviction", "Summary", "TwinStep", "chooses", "extras", "fixed_tokens"]
