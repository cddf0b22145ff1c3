"""``python -m xtts_broker``: the same entry point as the ``xtts-broker`` console script."""

import sys

from xtts_broker.serve import main

sys.exit(main())
