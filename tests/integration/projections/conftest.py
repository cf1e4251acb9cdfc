"""Fixtures of the projection engine's integration tests (private, restartable servers)."""
from tests.fixtures.projections import redis_process, store_process  # noqa: F401
