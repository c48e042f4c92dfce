"""``python -m promptseg`` runs the command line."""

import sys

from promptseg.cli import main

if __name__ == "__main__":
    sys.exit(main())
