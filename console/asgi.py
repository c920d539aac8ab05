"""ASGI entry point: HTTP through Django, websockets through Channels (console/routing.py)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
django_asgi = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from console.core.inputs import SafeStaticFilesHandler  # noqa: E402
from console.core.security import OriginValidator  # noqa: E402
from console.routing import websocket_urlpatterns  # noqa: E402

http_app = SafeStaticFilesHandler(django_asgi) if settings.CONSOLE_SERVE_STATIC else django_asgi

application = ProtocolTypeRouter(
    {
        "http": http_app,
        # A browser's websocket must come from the console's own pages (ALLOWED_HOSTS, CSRF_TRUSTED_ORIGINS).
        "websocket": OriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
