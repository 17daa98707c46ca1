"""Clusters wiring (see definitions.py)."""
