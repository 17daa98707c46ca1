"""Thin Dagster wiring, one folder per job of the method; each reads inputs, calls core, writes
outputs and reports metadata.  Domains import core and defs.common, never each other."""
