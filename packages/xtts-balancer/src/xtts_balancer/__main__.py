"""``python -m xtts_balancer``: the same as the ``xtts-balancer`` script."""

from __future__ import annotations

import sys

from xtts_balancer.serve import main

if __name__ == "__main__":
    sys.exit(main())
