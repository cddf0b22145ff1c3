"""Version of the xtts-cli distribution (read by hatchling)."""

__version__ = "0.1.0"
