"""Shared fixtures: real databases (SQLite files and PostgreSQL schemas), clocks and servers."""

from __future__ import annotations
