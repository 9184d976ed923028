"""``python -m mpsim ...``: the ``mpsim`` command line (``mpsim.cli.main``), with the same arguments, output and
exit status as the ``mpsim`` script."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
