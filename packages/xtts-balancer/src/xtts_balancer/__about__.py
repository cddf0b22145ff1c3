"""Version of the xtts-balancer distribution (read by Hatch)."""

__version__ = "0.1.0"
