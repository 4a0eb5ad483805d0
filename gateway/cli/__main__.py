"""``python -m gateway.cli``: the ``certgate`` console script without installing it."""

import sys

from gateway.cli.main import main

sys.exit(main())
