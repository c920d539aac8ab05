"""Pages need a role: an authenticated user in no role group sees a 403 page, as the API answers 403."""

from django.shortcuts import render

from console.core.permissions import VIEWER, has_role

# Paths that handle their own access (the API, authentication, assets, probes of the console itself).
EXEMPT_PREFIXES = ("/api/", "/static/", "/login/", "/logout/", "/oidc/", "/i18n/", "/jsi18n/", "/admin/", "/healthz",
                   "/readyz", "/metrics", "/ws/", "/favicon.ico")


class RoleRequiredMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (user is not None and user.is_authenticated and not request.path.startswith(EXEMPT_PREFIXES)
                and not has_role(user, VIEWER)):
            return render(request, "403_no_role.html", status=403)
        return self.get_response(request)
