"""Drills on the data: an event in a foreign stream, read models deleted or changed behind the projector's back."""
from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from projections.codec import text
from projections.eventstore import ProposedEvent
from projections.keys import KeySpace, latest_price_field
from projections.simulation.market import iso_utc
from tests.drills import compare
from tests.drills.drill import Context

IMPORT_STREAM = "trades-import-1"
IMPORT_AMOUNT_BTC = 2.5  # at ~$64k, over the $100K daily exposure: the trade also raises a risk alert
PORTFOLIO_VALUES = KeySpace.portfolio_values


def top_user(ctx: Context) -> str:
    users = ctx.ranking_members("portfolio", PORTFOLIO_VALUES)
    if not users:
        raise RuntimeError("portfolio-values is empty: the template holds no trader")
    return users[0]


def import_stream_repair(ctx: Context) -> None:
    """A large BTC buy of the top trader in an import stream (it raises a risk alert where it counts), applied by
    the live projector; then the check with repair an operator (or the scheduled check) would run."""
    stack = ctx.stack
    client = stack.client()
    user = top_user(ctx)
    market = KeySpace("market", compare.live_generation(client, "market"))
    quote = text(client.hget(market.latest_prices(), latest_price_field("binance", "BTC-USD")))
    price = float(json.loads(quote)["price"]) if quote else 64000.0
    trade = {"tradeId": f"trd-import-{uuid.uuid4().hex[:12]}", "userId": user, "pair": "BTC-USD", "side": "buy",
             "amount": IMPORT_AMOUNT_BTC, "price": price, "amountUsd": round(IMPORT_AMOUNT_BTC * price, 2),
             "exchange": "binance", "executedAt": iso_utc(datetime.now(UTC))}
    event_id = uuid.uuid4()
    with stack.eventstore() as store:
        store.append(IMPORT_STREAM, [ProposedEvent("TradeExecuted", trade, {"correlationId": str(event_id),
                                                                            "causationId": str(event_id),
                                                                            "source": "import"}, event_id)])
    compare.wait_caught_up(client, stack.store.uri, timeout=30)
    ctx.lifted()
    done = stack.manage("consistency", "--user", user, "--repair", timeout=180)
    ctx.note(f"{user}: consistency --user {user} --repair exit {done.returncode}: "
             f"{' | '.join(done.stdout.strip().splitlines()[:4])[:600]}")


def portfolio_keys_deleted(ctx: Context) -> None:
    """Every ``portfolio:<user>`` and ``portfolio:<user>:positions`` hash of the live generation deleted at once
    under the running market; nothing else done (the issue: detected within 10 s, healed within 60 s)."""
    client = ctx.stack.client()
    patterns = [ks.key("portfolio", "*") for ks in compare.spaces(client, "portfolio",
                                                                  compare.live_generation(client, "portfolio"))]
    doomed = [key for pattern in patterns for key in client.scan_iter(match=pattern, count=1000)]
    client.delete(*doomed)
    ctx.note(f"deleted {len(doomed)} keys ({', '.join(patterns)})")
    ctx.lifted()


def ranking_score_check_all(ctx: Context) -> None:
    """The top trader's score set to 1; ``consistency --all --json`` must report it (a problem if not), then the
    repair it offers is run."""
    stack = ctx.stack
    client = stack.client()
    user = top_user(ctx)
    ks = compare.space_of(client, "portfolio", compare.live_generation(client, "portfolio"), user)
    was = client.zscore(ks.portfolio_values(), user)
    client.zadd(ks.portfolio_values(), {user: 1}, xx=True)
    ctx.note(f"{user}'s score in portfolio-values: {was} -> 1")
    ctx.lifted()
    done = stack.manage("consistency", "--all", "--json", timeout=300)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        ctx.problem(f"consistency --all exit {done.returncode} printed no report: {(done.stdout + done.stderr)[-600:]}")
        return
    reported = [d for d in report.get("differences", [])
                if "portfolio-values" in d.get("key", "") and user in (d.get("field"), d.get("user"))]
    if not reported:
        ctx.problem(f"consistency --all (exit {done.returncode}, {report.get('consistent')} of {report.get('checked')} "
                    f"consistent, {report.get('difference_count')} differences) did not report {user}'s score in "
                    "portfolio-values")
    repair(ctx, report)


def repair(ctx: Context, report: dict[str, Any]) -> None:
    """What a check's report offers: a per-user rebuild of the users it names, else a rebuild of the projections
    it found differences in."""
    users = [str(u) for u in report.get("users_to_repair") or []]
    projections = sorted({str(d["projection"]) for d in report.get("differences") or []})
    commands = [["rebuild-user", *users, "--wait"]] if users else [["rebuild", p, "--yes", "--wait"] for p in projections]
    for command in commands:
        done = ctx.stack.manage(*command, timeout=240)
        ctx.note(f"manage.py {' '.join(command)}: exit {done.returncode}")
        if done.returncode != 0:
            ctx.problem(f"manage.py {' '.join(command)} exit {done.returncode}: {(done.stdout + done.stderr)[-400:]}")
