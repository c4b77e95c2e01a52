"""``python -m medvid_core run|batch|params ...``: see :mod:`medvid_core.cli`."""

import sys

from medvid_core.cli import main

if __name__ == "__main__":
    sys.exit(main())
