from django.urls import path

from lucent_admin.console.consumers import LiveConsumer

websocket_urlpatterns = [path("ws/live/<slug:page>/", LiveConsumer.as_asgi())]
