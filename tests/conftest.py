pytest_plugins = [
    "tests.fixtures.redis",
    "tests.fixtures.projections",  # before eventstore, which imports it (so its asserts are rewritten)
    "tests.fixtures.eventstore",
    "tests.fixtures.live",
    "tests.fixtures.jobs",
    "tests.fixtures.market",
    "tests.fixtures.topologies",
]
