"""Template context shared by every page."""

from console.permissions import user_role


def console(request):
    return {"console_role": user_role(getattr(request, "user", None))}
