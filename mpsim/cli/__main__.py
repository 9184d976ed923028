"""``python -m mpsim.cli ...``: the ``mpsim`` command line."""
import sys

from .commands import main

sys.exit(main())
