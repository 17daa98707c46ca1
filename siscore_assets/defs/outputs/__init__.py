"""Outputs wiring (see definitions.py)."""
