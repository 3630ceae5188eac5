"""``python -m hmrlab``: the ``hmrlab`` command (`hmrlab.training.cli`)."""

import sys

from hmrlab.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
