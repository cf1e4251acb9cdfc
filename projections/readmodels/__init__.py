"""One module per read model: state, evolve(), the entity an event touches, Redis codec.

This package is also the registry of projections: :data:`PROJECTIONS` (their names, in
the order the console lists them) is the one list every other place uses.
"""
from __future__ import annotations

from projections.errors import ConfigurationError
from projections.readmodels import leaderboards, market, portfolio, risk
from projections.readmodels.base import ReadModel

_MODELS: dict[str, ReadModel] = {m.name: m for m in (portfolio.MODEL, risk.MODEL, market.MODEL, leaderboards.MODEL)}
PROJECTIONS: tuple[str, ...] = tuple(_MODELS)


def model(name: str) -> ReadModel:
    """The read model of projection ``name``; ConfigurationError names the known ones."""
    if name not in _MODELS:
        raise ConfigurationError("projection", f"unknown projection {name!r}; known: {', '.join(PROJECTIONS)}")
    return _MODELS[name]


def user_projections() -> tuple[str, ...]:
    """The projections that keep per-user read models (``ReadModel.user_kind``)."""
    return tuple(name for name in PROJECTIONS if _MODELS[name].user_kind)
