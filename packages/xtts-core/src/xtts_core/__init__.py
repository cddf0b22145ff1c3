"""xtts-core."""
