"""Drills on generations: rebuilds and rollbacks as an operator runs them, one with the kept generation damaged."""
from __future__ import annotations

from projections import keys
from projections.codec import text
from projections.keys import KeySpace
from tests.drills import compare
from tests.drills.drill import Context

OPERATION_TIMEOUT_S = 180.0


def operate(ctx: Context, *command: str, must_succeed: bool) -> int:
    """``manage.py COMMAND`` (one that follows its job with ``--wait``); its exit status, noted, and a problem if it
    failed and ``must_succeed``."""
    done = ctx.stack.manage(*command, timeout=OPERATION_TIMEOUT_S)
    said = (done.stdout.strip() if done.returncode == 0 else done.stderr.strip()).splitlines()  # stderr: the progress bar
    ctx.note(f"manage.py {' '.join(command)}: exit {done.returncode}: {said[-1][:400] if said else ''}")
    if must_succeed and done.returncode != 0:
        ctx.problem(f"manage.py {' '.join(command)} exit {done.returncode}: {' | '.join(said[-3:])[:600]}")
    return done.returncode


def two_rebuilds_rollback(ctx: Context) -> None:
    """Two rebuilds and a rollback, each followed to its end; each must succeed (and health.py counts what
    generations they leave)."""
    ctx.lifted()  # no fault but the operations themselves: they are what must leave exact read models behind
    for command in (("rebuild", "portfolio"), ("rebuild", "portfolio"), ("rollback", "portfolio")):
        operate(ctx, *command, "--yes", "--wait", must_succeed=True)


def kept_generation_evicted_rollback(ctx: Context) -> None:
    """A rebuild; keys of a user deleted from the generation it kept; a rollback, which may refuse (its outcome
    is noted, not judged): what counts is that the live read models stay exact."""
    client = ctx.stack.client()
    operate(ctx, "rebuild", "portfolio", "--yes", "--wait", must_succeed=True)
    kept = text(client.hget(keys.flip("portfolio"), "from"))
    if not kept.isdigit() or int(kept) == compare.live_generation(client, "portfolio"):
        raise RuntimeError(f"the rebuild left no kept generation (flip: {client.hgetall(keys.flip('portfolio'))})")
    # An eviction takes whole keys, whichever were idle: here every key of a user but its main hash, which the
    # "missing read models" rule would notice after the rollback and repair (only the rollback can catch these).
    spaces = {u: compare.space_of(client, "portfolio", int(kept), u)
              for u in ctx.ranking_members("portfolio", KeySpace.portfolio_values, int(kept))}
    candidates = ([ks.portfolio_positions(u), ks.portfolio_history(u)] for u, ks in spaces.items())
    doomed = next(c for c in candidates if client.exists(*c) == len(c))
    client.delete(*doomed)
    ctx.note(f"deleted {', '.join(doomed)} from kept generation g{kept}")
    ctx.lifted()
    operate(ctx, "rollback", "portfolio", "--yes", "--wait", must_succeed=False)
