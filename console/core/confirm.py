"""Confirming a destructive action on a page: one form (an optional reason) and one page.

Stopping a job, deleting a job, node, credential or model version, resetting a host key, entering
maintenance and revoking a token are not done on one click. The button on the object's page is a
link to the action's URL; a GET there shows :func:`confirm_page` (what will happen, a reason field,
the button that posts), and the POST does it, handing ``ReasonForm.cleaned_data["reason"]`` to the
service, which records it in the audit event's ``detail["reason"]``. Plain HTML: no script needed.
"""

from __future__ import annotations

from django import forms
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _

__all__ = ["REASON_MAX", "ReasonForm", "confirm_page", "with_reason"]

#: The longest reason kept (the same bound as the API's ``reason`` fields).
REASON_MAX = 500


class ReasonForm(forms.Form):
    """The reason an operator gives for a destructive action (optional; kept in the audit log)."""

    reason = forms.CharField(label=_("Reason (optional)"), required=False, max_length=REASON_MAX,
                             widget=forms.TextInput(attrs={"size": 60, "autocomplete": "off"}),
                             help_text=_("Recorded in the event log with your name."))

    def clean_reason(self) -> str:
        value = self.cleaned_data["reason"].strip()
        if any(ord(c) < 32 for c in value):
            raise forms.ValidationError(_("One line of text, without control characters."))
        return value


def with_reason(detail: dict | None, reason: str) -> dict:
    """``detail`` with ``reason`` added when one was given (the audit events' shape)."""
    detail = dict(detail or {})
    if reason:
        detail["reason"] = reason[:REASON_MAX]
    return detail


def confirm_page(request, form: ReasonForm, *, title: str, question: str, button: str, cancel_url: str,
                 consequences: list[str] | tuple[str, ...] = (), hidden: dict[str, str] | None = None,
                 danger: bool = True, status: int = 200):
    """The confirmation page of an action: it posts back to the URL it was shown at."""
    return render(request, "console/confirm.html", {
        "form": form, "title": title, "question": question, "button": button, "cancel_url": cancel_url,
        "consequences": consequences, "hidden": hidden or {}, "danger": danger,
    }, status=status)
