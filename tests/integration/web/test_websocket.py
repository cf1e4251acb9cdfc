"""The console's live socket over the real Redis channel layer."""
from __future__ import annotations

import time

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from lucent_admin.asgi import application
from lucent_admin.console.consumers import CLOSE_BAD_REQUEST, CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED
from lucent_admin.console.routing import websocket_urlpatterns
from projections.projector.notices import group_name
from tests.accounts import account

pytestmark = pytest.mark.django_db(transaction=True)


def as_user(user, path: str) -> WebsocketCommunicator:
    router = URLRouter(websocket_urlpatterns)

    async def app(scope, receive, send):
        return await router({**scope, "user": user}, receive, send)

    return WebsocketCommunicator(app, path)


async def staff_user(name: str = "ops"):
    return await sync_to_async(account)(name, "pw-ops-123")


async def notify(projection: str, checkpoint: int, **lists) -> None:
    notice = {"projection": projection, "checkpoint": checkpoint, **lists}
    await get_channel_layer().group_send(group_name(projection), {"type": "change.notice", "notice": notice})


async def receive_all(comm: WebsocketCommunicator, within: float) -> list[str]:
    """Every frame that arrives within ``within`` seconds (receive_nothing never cancels the app)."""
    frames, deadline = [], time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0 and not await comm.receive_nothing(timeout=min(left, 0.05)):
        frames.append(await comm.receive_from(timeout=1))
    return frames


async def refused_with(comm: WebsocketCommunicator) -> int:
    """The close code of a refused socket: accepted, then closed at once (so the browser sees the code)."""
    assert await comm.connect() == (True, None)
    message = await comm.receive_output(timeout=5)
    assert message["type"] == "websocket.close", message
    return int(message["code"])


async def test_anonymous_connection_is_closed() -> None:
    comm = WebsocketCommunicator(application, "/ws/live/overview/", headers=[(b"origin", b"http://127.0.0.1:8000")])
    assert await refused_with(comm) == CLOSE_UNAUTHENTICATED


async def test_non_staff_connection_is_refused() -> None:
    user = await sync_to_async(get_user_model().objects.create_user)("bob", password="pw-bob-123")
    assert await refused_with(as_user(user, "/ws/live/overview/")) == CLOSE_FORBIDDEN


@pytest.mark.parametrize("path", [
    "/ws/live/nope/", "/ws/live/user/?user=../x", "/ws/live/user/", "/ws/live/user/?user=", "/ws/live/user/?who=alice",
])
async def test_unknown_page_bad_or_missing_user_id_is_refused(path: str) -> None:
    assert await refused_with(as_user(await staff_user(), path)) == CLOSE_BAD_REQUEST


async def test_socket_catches_up_on_connect_then_pushes_only_affected_widgets(redis_client) -> None:
    comm = as_user(await staff_user(), "/ws/live/leaderboards/")
    assert (await comm.connect())[0]
    first = await comm.receive_from(timeout=5)
    for dom_id in ("w-top-portfolios", "w-volume-leaders", "w-strategies"):
        assert f'id="{dom_id}"' in first
    await notify("leaderboards", 10, users=["u1"])
    pushed = await comm.receive_from(timeout=5)
    assert 'id="w-volume-leaders"' in pushed and 'id="w-strategies"' in pushed
    assert 'id="w-top-portfolios"' not in pushed
    assert 'hx-swap-oob="outerHTML"' in pushed
    await notify("market", 11, pairs=["BTC-USD"])
    assert await comm.receive_nothing(timeout=0.5)
    await comm.disconnect()


async def test_a_burst_of_notices_is_coalesced_into_a_few_renders(redis_client) -> None:
    comm = as_user(await staff_user(), "/ws/live/risk/")
    await comm.connect()
    await comm.receive_from(timeout=5)
    for checkpoint in range(1, 101):
        await notify("risk", checkpoint, users=[f"u{checkpoint}"])
    frames = await receive_all(comm, within=1.0)
    assert 1 <= len(frames) <= 5, len(frames)
    await comm.disconnect()


async def test_user_page_ignores_notices_about_other_users(redis_client) -> None:
    comm = as_user(await staff_user(), "/ws/live/user/?user=alice")
    await comm.connect()
    await comm.receive_from(timeout=5)
    await notify("risk", 5, users=["bob"])
    assert await comm.receive_nothing(timeout=0.5)
    await notify("risk", 6, users=["alice"])
    assert 'id="w-user-risk"' in await comm.receive_from(timeout=5)
    await comm.disconnect()


async def test_one_trades_notices_from_several_projections_go_out_as_one_frame(redis_client) -> None:
    comm = as_user(await staff_user(), "/ws/live/leaderboards/")
    await comm.connect()
    await comm.receive_from(timeout=5)
    await notify("portfolio", 20, users=["u1"])
    await notify("leaderboards", 20, users=["u1"])
    frame = await comm.receive_from(timeout=5)
    assert all(f'id="{w}"' in frame for w in ("w-top-portfolios", "w-volume-leaders", "w-strategies"))
    assert await comm.receive_nothing(timeout=0.4)
    await comm.disconnect()


async def test_sockets_showing_the_same_widget_share_one_render(redis_client, monkeypatch) -> None:
    from lucent_admin.console import pushes

    renders: list[str] = []
    real = pushes.render_widget

    def counting(widget, params, oob=False):
        renders.append(widget.name)
        return real(widget, params, oob=oob)

    monkeypatch.setattr(pushes, "render_widget", counting)
    user = await staff_user()
    sockets = [as_user(user, "/ws/live/market/") for _ in range(5)]
    for comm in sockets:
        await comm.connect()
        await comm.receive_from(timeout=5)
    renders.clear()
    await notify("market", 31, pairs=["BTC-USD"])
    frames = [await comm.receive_from(timeout=5) for comm in sockets]
    assert len(set(frames)) == 1 and 'id="w-prices"' in frames[0]
    assert sorted(renders) == ["arbitrage", "movers", "prices"]
    for comm in sockets:
        await comm.disconnect()
