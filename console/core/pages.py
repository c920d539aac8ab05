"""What pages do with a service's refusal: the one place a ``Conflict`` becomes an error on a page.

The API's exception handler answers 409 ``{"detail": ...}`` for any
:class:`console.core.errors.Conflict`; a page view wraps the service call in
:func:`conflict_message` instead, and the same ``detail`` is shown to the user as an error (a
message on the next page, or a non-field error of the form being shown again)::

    with conflict_message(request) as outcome:
        services.expire_silence(silence, request=request)
        messages.success(request, _("Silence expired."))
    return redirect("alerting-silences")

Only ``Conflict`` is caught: any other exception is a bug and propagates.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.contrib import messages

from console.core.errors import Conflict

__all__ = ["ConflictOutcome", "conflict_message"]


@dataclass
class ConflictOutcome:
    """What happened inside :func:`conflict_message`: ``detail`` is the refusal, ``None`` when none."""

    detail: str | None = None

    @property
    def refused(self) -> bool:
        return self.detail is not None


@contextmanager
def conflict_message(request, form=None) -> Iterator[ConflictOutcome]:
    """Run the block; a ``Conflict`` it raises becomes an error for the user, not a crash.

    With ``form``, the refusal is the form's non-field error (the page renders the form again);
    without, it is a ``messages.error`` shown by the page the view redirects to. The yielded
    :class:`ConflictOutcome` tells the view which happened.
    """
    outcome = ConflictOutcome()
    try:
        yield outcome
    except Conflict as exc:
        outcome.detail = exc.detail
        if form is not None:
            form.add_error(None, exc.detail)
        else:
            messages.error(request, exc.detail)


def copy_api_errors(form, errors: dict) -> None:
    """Put a serializer's field errors on the page's ``form``: on the field of the same name, else as a
    form-wide error (pages validate through the API's serializers, so both say the same)."""
    for field, problems in errors.items():
        form.add_error(field if field in form.fields else None, problems)
