"""The authenticated websocket over the real Redis channel layer."""
from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from lucent_admin.asgi import application
from lucent_admin.console.consumers import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, LiveConsumer

pytestmark = pytest.mark.django_db(transaction=True)


def communicator(user) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    comm.scope["user"] = user
    return comm


async def test_anonymous_connection_is_closed() -> None:
    comm = WebsocketCommunicator(application, "/ws/live/", headers=[(b"origin", b"http://127.0.0.1:8000")])
    connected, code = await comm.connect()
    assert not connected
    assert code == CLOSE_UNAUTHENTICATED


async def test_non_staff_connection_is_refused() -> None:
    user = await sync_to_async(get_user_model().objects.create_user)("bob", password="pw-bob-123")
    connected, code = await communicator(user).connect()
    assert (connected, code) == (False, CLOSE_FORBIDDEN)


async def test_staff_socket_receives_change_notices_of_joined_groups(redis_client) -> None:
    user = await sync_to_async(get_user_model().objects.create_user)("ops", password="pw-ops-123", is_staff=True)
    comm = communicator(user)
    connected, _ = await comm.connect()
    assert connected
    await comm.send_json_to({"subscribe": ["changes.portfolio"]})
    assert await comm.receive_json_from(timeout=5) == {"subscribed": ["changes.portfolio"]}
    layer = get_channel_layer()
    await layer.group_send("changes.market", {"type": "change.notice", "notice": {"projection": "market"}})
    await layer.group_send("changes.portfolio", {"type": "change.notice", "notice": {"projection": "portfolio", "users": ["u1"]}})
    message = await comm.receive_json_from(timeout=5)
    assert message == {"notice": {"projection": "portfolio", "users": ["u1"]}}
    assert await comm.receive_nothing(timeout=0.3)
    await comm.disconnect()


async def test_unknown_group_is_rejected_with_a_message() -> None:
    user = await sync_to_async(get_user_model().objects.create_user)("ops", password="pw-ops-123", is_staff=True)
    comm = communicator(user)
    await comm.connect()
    await comm.send_json_to({"subscribe": ["changes.nope"]})
    assert (await comm.receive_json_from(timeout=5))["error"] == "unknown groups: changes.nope"
    await comm.disconnect()


