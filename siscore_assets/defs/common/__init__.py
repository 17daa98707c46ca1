"""Shared plumbing of the wiring: partitions, resources, the data-access module, metadata."""
