"""xtts-cli: the ``xtts`` command line for XTTS-v2 (see ``xtts --help``).

Importing this package (or running ``xtts --help``) never imports torch: the model-facing
modules of xtts-core are imported inside the commands that need them.
"""

from xtts_cli.__about__ import __version__

__all__ = ["__version__"]
