"""The application: the ``mpsim`` command line, the demo and the op catalogue.

The one place allowed to import every layer (engine, protocols, mpcache, costmodel); nothing imports it but
the ``mpsim`` script, ``python -m mpsim`` and tests.
"""
from __future__ import annotations

from .commands import main

__all__ = ["main"]
