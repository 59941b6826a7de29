"""``python -m parity``: the same as the ``nn-parity`` command (parity.cli)."""

import sys

from parity.cli import main

if __name__ == "__main__":
    sys.exit(main())
