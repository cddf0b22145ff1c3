"""``python -m xtts_cli``: the same entry point as the ``xtts`` console script."""

from xtts_cli.main import main

main()
