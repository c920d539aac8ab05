"""The errors every service raises, whatever the app: one base class per kind of refusal.

``Conflict`` means "valid, but not in the current state" (a running job deleted, a version in use,
a transition the table forbids). The API's exception handler (console.core.api) turns any of them
into 409 ``{"detail": "..."}``; pages turn them into a form or message error
(console.core.pages.conflict_message). Services raise them; views never map them by hand.
"""


class Conflict(Exception):
    """The request conflicts with the current state of an object (HTTP 409)."""

    def __init__(self, detail: str = "The request conflicts with the current state."):
        super().__init__(detail)
        self.detail = str(detail)

    def __str__(self) -> str:
        return self.detail
