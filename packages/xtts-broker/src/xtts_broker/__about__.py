"""Version of the xtts-broker distribution (read by hatchling)."""

__version__ = "0.1.0"
