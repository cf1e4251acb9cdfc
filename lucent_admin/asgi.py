"""ASGI entry point: Django for HTTP, Channels for websockets."""
from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from lucent_admin.startup import check_redis, guarded

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lucent_admin.settings")
django_asgi_app = guarded(get_asgi_application)

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs the apps loaded)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from lucent_admin.console.routing import websocket_urlpatterns  # noqa: E402

if os.environ.get("LUCENT_CHECK_SERVICES", "1") == "1":
    check_redis()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
