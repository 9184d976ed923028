"""Nested scopes and local compute time.

The profiler owns the scope stack of one session: ``with session.scope("layer"):`` pushes a name, and the
channel and dealer stamp every message with the current path ("layer/attention/qk/beaver_mul"). It also
measures the wall-clock time spent inside each scope path (inclusive of sub-scopes), which the cost model
uses to calibrate local compute time. Scope names may not contain "/".
"""
from __future__ import annotations

import time
from contextlib import contextmanager


class Profiler:
    def __init__(self):
        self._stack: list[str] = []
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    @property
    def path(self) -> str:
        return "/".join(self._stack)

    @contextmanager
    def scope(self, name: str):
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"a scope name is a non-empty string without '/', got {name!r}")
        self._stack.append(name)
        path = self.path
        start = time.perf_counter()
        try:
            yield path
        finally:
            self.seconds[path] = self.seconds.get(path, 0.0) + time.perf_counter() - start
            self.calls[path] = self.calls.get(path, 0) + 1
            self._stack.pop()
