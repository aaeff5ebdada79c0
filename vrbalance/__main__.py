"""``python -m vrbalance`` runs the same command-line interface as ``vrbalance``."""

import sys

from vrbalance.cli import main

if __name__ == "__main__":
    sys.exit(main())
