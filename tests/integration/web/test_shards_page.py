"""The Shards page and ``manage.py shards``: which member owns which partition (owner, epoch, lease), where each
stands, and the members with their partitions; a partition nobody owns is called out."""
from __future__ import annotations

import io
import json
import re

import pytest
from django.core.management import call_command
from django.test import Client

from projections import keys
from projections.partitions import Partition
from projections.projector.membership import Claim, Membership
from projections.readmodels import PROJECTIONS
from tests.accounts import account

pytestmark = pytest.mark.django_db


def members(redis_client, names: list[str]) -> dict[str, Membership]:
    """Members that claim their share of the four projections (no runner behind them: the page shows ownership)."""
    found = {name: Membership(redis_client, name, [Partition(p) for p in PROJECTIONS], 30_000, lambda _c: None,
                              lambda _c, _w: None, info=lambda: {"host": "box-1", "pid": "4242", "cpu_s": "12.5",
                                                                  "rss_mb": "80.0"}) for name in names}
    for _ in range(3):
        for membership in found.values():
            membership.tick()
    return found


def reporting(redis_client, projection: str, checkpoint: int) -> None:
    redis_client.hset(keys.status(projection), mapping={"state": "live", "checkpoint": str(checkpoint), "throughput": "42.0"})
    redis_client.set(keys.heartbeat(projection), '{"at": 9999999999, "projector": "t", "state": "live"}', ex=30)


def test_the_page_shows_each_partitions_owner_and_each_members_partitions(redis_client) -> None:
    found = members(redis_client, ["member-a", "member-b"])
    reporting(redis_client, "risk", 1234)
    client = Client()
    client.force_login(account("viewer"))

    page = client.get("/shards/").content.decode()

    for name, membership in found.items():
        claims: list[Claim] = list(membership.owned.values())
        assert len(claims) == 2
        for claim in claims:
            row = re.search(rf'<tr data-partition="{claim.partition.tag}" data-owner="([^"]*)">(.*?)</tr>', page, re.S)
            assert row and row.group(1) == name and f'data-field="epoch">{claim.epoch}<' in row.group(2)
        listed = re.search(rf'<tr data-member="{name}">.*?data-field="member-partitions">(.*?)</td>', page, re.S)
        assert listed and sorted(re.findall(r"<code>([^<]+)</code>", listed.group(1))) == sorted(c.partition.label for c in claims)
    assert "42/s" in page and "1234" in page and "80.0 MiB" in page
    assert 'data-field="unowned"' not in page and "Shards" in page


def test_a_partition_nobody_owns_is_called_out(redis_client) -> None:
    client = Client()
    client.force_login(account("viewer"))
    page = client.get("/shards/").content.decode()
    assert 'data-field="unowned"' in page and "4 partitions owned by no projector member" in page
    assert 'data-field="no-members"' in page


def test_the_command_line_lists_the_same(redis_client) -> None:
    found = members(redis_client, ["member-a", "member-b"])
    out = io.StringIO()
    call_command("shards", "--json", stdout=out)
    report = json.loads(out.getvalue())
    owners = {p["partition"]: (p["owner"], p["epoch"]) for p in report["partitions"]}
    for name, membership in found.items():
        for claim in membership.owned.values():
            assert owners[claim.partition.label] == (name, claim.epoch)
    assert sorted(m["member"] for m in report["members"]) == ["member-a", "member-b"]
    assert all(len(m["partitions"]) == 2 and m["host"] == "box-1" for m in report["members"])

    text = io.StringIO()
    call_command("shards", stdout=text)
    assert "member-a" in text.getvalue() and "partition" in text.getvalue().splitlines()[0]
