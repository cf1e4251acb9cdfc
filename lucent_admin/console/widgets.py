"""The console's widgets: what each page shows, which projections it depends on, how it renders.

A widget is a fragment of a page with a stable DOM id. Pages render their
widgets in place; the live socket re-renders them as out-of-band swaps when a
change notice of one of their projections arrives.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.template.loader import render_to_string

from lucent_admin.console import canary, contexts, infrastructure, jobs, published, recovery, shards
from lucent_admin.operations.observability import HEALTH, INFRASTRUCTURE, SHARDS
from projections.readmodels import PROJECTIONS

Params = Mapping[str, str]
Notice = Mapping[str, Any]


def always(notice: Notice, params: Params) -> bool:
    return True


def about_the_job(notice: Notice, params: Params) -> bool:
    return params.get("job", "") in notice.get("jobs", ())


def about_the_user(notice: Notice, params: Params) -> bool:
    return bool(notice.get("truncated")) or params.get("user", "") in notice.get("users", ())


@dataclass(frozen=True)
class Widget:
    name: str
    template: str
    context: Callable[[Params], dict[str, Any]]
    projections: tuple[str, ...] = ()
    relevant: Callable[[Notice, Params], bool] = field(default=always)
    needs: tuple[str, ...] = ()  # the parameters its context reads (the user page's ``user``)

    @property
    def dom_id(self) -> str:
        return f"w-{self.name}"


WIDGETS: dict[str, Widget] = {
    w.name: w
    for w in (
        Widget("projection-tiles", "console/widgets/projection_tiles.html", contexts.projection_tiles,
               (*PROJECTIONS, HEALTH)),
        Widget("top-portfolios", "console/widgets/top_portfolios.html", contexts.top_portfolios,
               ("portfolio",)),
        Widget("volume-leaders", "console/widgets/volume_leaders.html", contexts.volume_leaders, ("leaderboards",)),
        Widget("strategies", "console/widgets/strategies.html", contexts.strategies, ("leaderboards",)),
        Widget("alerts", "console/widgets/alerts.html", contexts.alerts, ("risk",)),
        Widget("high-risk", "console/widgets/high_risk.html", contexts.high_risk, ("risk",)),
        Widget("risk-ranking", "console/widgets/risk_ranking.html", contexts.risk_ranking, ("risk",)),
        Widget("prices", "console/widgets/prices.html", contexts.prices, ("market",)),
        Widget("movers", "console/widgets/movers.html", contexts.movers, ("market",)),
        Widget("arbitrage", "console/widgets/arbitrage.html", contexts.arbitrage, ("market",)),
        Widget("user-portfolio", "console/widgets/user_portfolio.html", contexts.user_portfolio,
               ("portfolio", "leaderboards", "jobs"), about_the_user, needs=("user",)),
        Widget("user-risk", "console/widgets/user_risk.html", contexts.user_risk, ("risk", "jobs"), about_the_user,
               needs=("user",)),
        Widget("jobs", "console/widgets/jobs.html", jobs.jobs, ("jobs",)),
        Widget("user-jobs", "console/widgets/user_jobs.html", jobs.user_jobs, ("jobs",), about_the_user,
               needs=("user",)),
        Widget("user-published", "console/widgets/user_published.html", published.user_published,
               ("risk", "portfolio"), about_the_user, needs=("user",)),
        Widget("job", "console/widgets/job.html", jobs.job_detail, ("jobs",), about_the_job, needs=("job",)),
        Widget("consistency-scores", "console/widgets/consistency_scores.html", jobs.consistency_scores, ("jobs",)),
        Widget("consistency-reports", "console/widgets/consistency_reports.html", jobs.consistency_reports, ("jobs",)),
        Widget("recovery", "console/widgets/recovery.html", recovery.recovery, (HEALTH, "jobs")),
        Widget("projection-details", "console/widgets/projection_details.html", contexts.projection_details,
               (*PROJECTIONS, "jobs", HEALTH)),
        Widget("canary-freshness", "console/widgets/canary_freshness.html", canary.freshness, PROJECTIONS),
        # the Infrastructure page: redrawn on each sample beat records (its notices' "projection")
        Widget("infra-nodes", "console/widgets/infra_nodes.html", infrastructure.nodes, (INFRASTRUCTURE,)),
        Widget("infra-memory", "console/widgets/infra_memory.html", infrastructure.memory, (INFRASTRUCTURE,)),
        Widget("infra-latency", "console/widgets/infra_latency.html", infrastructure.latency, (INFRASTRUCTURE,)),
        Widget("infra-rates", "console/widgets/infra_rates.html", infrastructure.rates, (INFRASTRUCTURE,)),
        Widget("infra-store", "console/widgets/infra_store.html", infrastructure.store, (INFRASTRUCTURE,)),
        # the Shards page: redrawn when a member's partitions change (its notice) and as the partitions commit
        Widget("shards", "console/widgets/shards.html", shards.shards, (SHARDS, *PROJECTIONS)),
    )
}

PAGES: dict[str, tuple[str, ...]] = {
    "overview": ("projection-tiles", "recovery", "canary-freshness"),
    "leaderboards": ("top-portfolios", "volume-leaders", "strategies"),
    "risk": ("alerts", "high-risk", "risk-ranking"),
    "market": ("prices", "movers", "arbitrage"),
    "user": ("user-portfolio", "user-risk", "user-jobs", "user-published"),
    "projections": ("projection-details", "canary-freshness"),
    "jobs": ("jobs",),
    "consistency": ("consistency-scores", "consistency-reports"),
    "job": ("job",),
    "infrastructure": ("infra-nodes", "infra-memory", "infra-latency", "infra-rates", "infra-store"),
    "shards": ("shards",),
}


def page_widgets(page: str) -> list[Widget]:
    return [WIDGETS[name] for name in PAGES[page]]


def page_params(page: str) -> set[str]:
    """The parameters a page's widgets need: a socket for the page must carry every one."""
    return {name for widget in page_widgets(page) for name in widget.needs}


def render_widget(widget: Widget, params: Params, oob: bool = False) -> str:
    """The widget's HTML, wrapped in its stable container (an out-of-band swap when ``oob``)."""
    context = widget.context(params)
    return render_to_string(
        "console/widget.html",
        {**context, "widget": widget, "oob": oob, "inner_template": widget.template},
    )
