"""ASGI entry point: Django for HTTP, Channels for websockets."""
from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from lucent_admin.startup import check_redis, guarded

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lucent_admin.settings")
django_asgi_app = guarded(get_asgi_application)

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs the apps loaded)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from lucent_admin.console.routing import websocket_urlpatterns  # noqa: E402

if os.environ.get("LUCENT_CHECK_SERVICES", "1") == "1":
    check_redis()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # An origin must match one of CSRF_TRUSTED_ORIGINS with its scheme and port, not only its host name.
        "websocket": OriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)), settings.CSRF_TRUSTED_ORIGINS),
    }
)
