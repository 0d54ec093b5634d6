"""Quartermaster: software distribution for a fleet of managed computers."""

__version__ = "0.1.0"
