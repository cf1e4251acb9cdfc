pytest_plugins = [
    "tests.fixtures.redis",
    "tests.fixtures.eventstore",
    "tests.fixtures.live",
]
