"""Shared pytest set-up. Fixtures live in ``tests/plugins/`` (one module per area)."""

pytest_plugins = [
    "tests.plugins.ray_fixtures",
    "tests.plugins.sim_fixtures",
    "tests.plugins.server_fixtures",
]
