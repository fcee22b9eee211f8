"""Scheduler plugins: one module per plugin, each with a NAME and its reason strings."""
