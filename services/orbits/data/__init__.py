"""Bundled real orbital data (element sets and ground stations); see README.md beside it."""
