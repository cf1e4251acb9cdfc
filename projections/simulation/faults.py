"""Malformed events for fault drills: each kind breaks the catalog in one way.

The projector must park every one of them (invariant 5) and keep going.
Each drill event carries ``faultDrill: <kind>`` in its metadata so an
operator can tell a drill from a real producer bug.
"""
from __future__ import annotations

import random
from typing import Any

__all__ = ["BAD_KINDS", "malformed"]

BAD_KINDS: tuple[str, ...] = (
    "missing_field",  # a required field is absent
    "negative_price",  # price < 0
    "nan_string",  # price is the string "NaN"
    "bad_pair",  # "BTCUSD" instead of BASE-QUOTE
    "non_json",  # the data bytes are not JSON (nor UTF-8)
    "bad_user_id",  # userId with characters outside [A-Za-z0-9_.-]
    "wrong_type",  # amount is a string, side a number
    "bad_timestamp",  # executedAt is not an ISO-8601 time
)

TRADE_REQUIRED = ("tradeId", "userId", "pair", "side", "amount", "price", "amountUsd", "exchange", "executedAt")

Malformed = tuple[str, str, dict[str, Any], bytes | None]


def malformed(
    kind: str,
    rng: random.Random,
    user_id: str,
    pair: str,
    exchange: str,
    price: float,
    when: str,
    trade_id: str,
) -> Malformed:
    """A ``(stream, type, data, raw_data)`` drill event of ``kind``; ``raw_data`` is set only for non_json."""
    amount = round(rng.uniform(0.01, 2.0), 8)
    trade: dict[str, Any] = {
        "tradeId": trade_id, "userId": user_id, "pair": pair, "side": rng.choice(("buy", "sell")),
        "amount": amount, "price": price, "amountUsd": round(amount * price, 2),
        "exchange": exchange, "executedAt": when,
    }
    quote: dict[str, Any] = {"exchange": exchange, "pair": pair, "price": price, "volume": 1000.0, "timestamp": when}
    trades, prices = f"trades-{user_id}", f"prices-{exchange}"
    if kind == "missing_field":
        del trade[rng.choice(TRADE_REQUIRED[2:])]  # keep the ids so the stream still names the user
        return trades, "TradeExecuted", trade, None
    if kind == "negative_price":
        return prices, "PriceUpdated", {**quote, "price": -price}, None
    if kind == "nan_string":
        return trades, "TradeExecuted", {**trade, "price": "NaN"}, None
    if kind == "bad_pair":
        return prices, "PriceUpdated", {**quote, "pair": pair.replace("-", "")}, None
    if kind == "non_json":
        raw = ('{"tradeId": "' + trade_id + '", "userId": "' + user_id + '", "amount": ').encode() + b"\xff\x00"
        return trades, "TradeExecuted", {}, raw
    if kind == "bad_user_id":
        bad = user_id.replace("-", " ") + "!"
        return f"trades-{bad}", "TradeExecuted", {**trade, "userId": bad}, None
    if kind == "wrong_type":
        return trades, "TradeExecuted", {**trade, "amount": str(amount), "side": 1}, None
    if kind == "bad_timestamp":
        return trades, "TradeExecuted", {**trade, "executedAt": "yesterday at noon"}, None
    raise ValueError(f"unknown fault kind {kind!r}; use one of {', '.join(BAD_KINDS)}")
