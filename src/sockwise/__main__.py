"""``python -m sockwise``: the same command line as the ``sockwise`` script."""

import sys

from sockwise.cli import main

if __name__ == "__main__":
    sys.exit(main())
