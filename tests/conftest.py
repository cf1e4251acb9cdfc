pytest_plugins = [
    "tests.fixtures.redis",
    "tests.fixtures.eventstore",
    "tests.fixtures.projections",
    "tests.fixtures.live",
    "tests.fixtures.jobs",
    "tests.fixtures.market",
]
