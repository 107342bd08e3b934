"""Tests of the Python binding (a package, so its conftest does not shadow ../conftest.py)."""
