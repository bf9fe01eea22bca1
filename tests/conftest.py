"""Fixtures shared by every test tier. Tier-specific fixtures live in each folder's conftest."""

pytest_plugins = ["tests.doubles.fixtures"]
