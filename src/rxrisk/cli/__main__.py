"""``python -m rxrisk.cli``: the ``rxrisk`` command line."""

import sys

from rxrisk.cli import main

sys.exit(main())
