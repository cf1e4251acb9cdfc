"""One module per read model: state, evolve(), the entity an event touches, Redis codec."""
from __future__ import annotations

from projections.readmodels.base import ReadModel


def models() -> dict[str, ReadModel]:
    """Projection name -> its read model, in the order the console lists them."""
    from projections.readmodels import leaderboards, market, portfolio, risk

    return {m.name: m for m in (portfolio.MODEL, risk.MODEL, market.MODEL, leaderboards.MODEL)}


def model(name: str) -> ReadModel:
    """The read model of projection ``name``; ConfigurationError names the known ones."""
    from projections.errors import ConfigurationError

    known = models()
    if name not in known:
        raise ConfigurationError("projection", f"unknown projection {name!r}; known: {', '.join(known)}")
    return known[name]
