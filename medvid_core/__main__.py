"""``python -m medvid_core run|batch|params ...``: see :mod:`medvid_core.runner`.

Kept separate from the runner so ``import medvid_core.runner`` never parses argv.
"""

import sys

from medvid_core.runner import main

if __name__ == "__main__":
    sys.exit(main())
