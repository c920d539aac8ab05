"""Users and roles (admins) and API tokens (everyone their own; admins everyone's). Thin: the work is
console.accounts.services'. A new password or token key is rendered once, in the answer to the POST that
made it, never put in a message, a redirect or a log."""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from console.accounts import services
from console.accounts.forms import RoleForm, TokenForm, UserCreateForm
from console.context_processors import ROLE_LABELS
from console.core.confirm import ReasonForm, confirm_page
from console.core.models import ApiToken
from console.core.pages import conflict_message
from console.core.permissions import ADMIN, OPERATOR, VIEWER, has_role


def _require(request, role):
    if not has_role(request.user, role):
        raise PermissionDenied


@login_required
def user_list(request):
    _require(request, ADMIN)
    users = list(get_user_model().objects.prefetch_related("groups").annotate(token_count=Count("api_tokens"))
                 .order_by("username"))
    rows = []
    for user in users:
        groups = {g.name for g in user.groups.all()}  # prefetched: no query per user
        role = ADMIN if user.is_superuser else next((r for r in (ADMIN, OPERATOR, VIEWER) if r in groups), None)
        rows.append({"user": user, "role": role or "", "role_label": ROLE_LABELS.get(role, _("no role")),
                     "form": RoleForm(initial={"role": role or ""}, prefix=f"u{user.pk}")})
    return render(request, "accounts/user_list.html", {"rows": rows})


@login_required
def user_create(request):
    _require(request, ADMIN)
    form = UserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user, generated = services.create_user(
            username=form.cleaned_data["username"], email=form.cleaned_data["email"],
            role=form.cleaned_data["role"] or None, password=form.cleaned_data["password"], request=request)
        return render(request, "accounts/user_created.html", {"created": user, "password": generated})
    return render(request, "accounts/user_form.html", {"form": form})


@login_required
@require_POST
def user_role_change(request, pk):
    _require(request, ADMIN)
    user = get_object_or_404(get_user_model(), pk=pk)
    form = RoleForm(request.POST, prefix=f"u{user.pk}")
    if not form.is_valid():
        for problems in form.errors.values():
            for problem in problems:
                messages.error(request, problem)
        return redirect("user-list")
    role = form.cleaned_data["role"] or None
    with conflict_message(request):
        services.change_role(user, role, request=request, reason=form.cleaned_data["reason"].strip())
        messages.success(request, _("%(name)s is now: %(role)s.") % {
            "name": user.get_username(), "role": ROLE_LABELS.get(role, _("no role"))})
    return redirect("user-list")


@login_required
def user_deactivate(request, pk):
    _require(request, ADMIN)
    user = get_object_or_404(get_user_model(), pk=pk)
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with conflict_message(request):
            services.set_active(user, False, request=request, reason=form.cleaned_data["reason"])
            messages.success(request, _("%(name)s deactivated.") % {"name": user.get_username()})
        return redirect("user-list")
    return confirm_page(
        request, form, title=_("Deactivate %(name)s?") % {"name": user.get_username()},
        question=_("They can no longer sign in, their open sessions end and their API tokens stop working. "
                   "Their events stay in the log; you can reactivate them later."),
        button=_("Deactivate"), cancel_url=reverse("user-list"))


@login_required
@require_POST
def user_activate(request, pk):
    _require(request, ADMIN)
    user = get_object_or_404(get_user_model(), pk=pk)
    services.set_active(user, True, request=request)
    messages.success(request, _("%(name)s reactivated.") % {"name": user.get_username()})
    return redirect("user-list")


@login_required
def token_list(request):
    """The user's own tokens, a form to create one (its key shown once, in this answer), and for admins
    everyone else's tokens."""
    _require(request, VIEWER)
    form = TokenForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        created = services.create_token(request.user, form.cleaned_data["name"], request=request)
        form = TokenForm()
    mine = ApiToken.objects.filter(user=request.user).order_by("-created", "-id")
    others = (ApiToken.objects.exclude(user=request.user).select_related("user").order_by("user__username",
                                                                                          "-created")
              if has_role(request.user, ADMIN) else None)
    return render(request, "accounts/token_list.html", {
        "form": form, "created": created, "mine": mine, "others": others})


@login_required
def token_revoke(request, pk):
    """Revoke a token after a confirmation: one's own, or (admins) anyone's."""
    _require(request, VIEWER)
    token = get_object_or_404(ApiToken.objects.select_related("user"), pk=pk)
    if token.user_id != request.user.pk and not has_role(request.user, ADMIN):
        raise PermissionDenied
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.revoke_token(token, request=request, reason=form.cleaned_data["reason"])
        messages.success(request, _("Token %(prefix)s… revoked.") % {"prefix": token.prefix})
        return redirect("token-list")
    return confirm_page(
        request, form, title=_("Revoke the token %(prefix)s…?") % {"prefix": token.prefix},
        question=_("Scripts that use it get 401 from their next request on."),
        consequences=[_("Owner: %(user)s; name: %(name)s") % {"user": token.user.get_username(),
                                                               "name": token.name or "—"}],
        button=_("Revoke the token"), cancel_url=reverse("token-list"))
