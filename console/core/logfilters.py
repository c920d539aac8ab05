"""Log filters: what `make run` keeps off the terminal unless --verbose (CONSOLE_QUIET)."""

import logging
import os

#: Messages that say nothing to an operator of the embedded profile (the filesystem broker has no host).
NOISE = ("No hostname was supplied",)


def quiet() -> bool:
    return os.environ.get("CONSOLE_QUIET", "").lower() in ("1", "true", "yes", "on")


class QuietFilter(logging.Filter):
    """Drops the known noise when CONSOLE_QUIET is set; lets everything through otherwise."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not quiet():
            return True
        message = record.getMessage()
        return not any(noise in message for noise in NOISE)


def install_quiet() -> None:
    """In a quiet process: the noise filter on the loggers that emit it (Celery's own logging setup
    replaces the handlers Django configured, so the filter sits on the logger itself), and no warning
    about a worker running as root (the embedded profile often does, in a container)."""
    if not quiet():
        return
    logging.getLogger("kombu.connection").addFilter(QuietFilter())
    import warnings

    warnings.filterwarnings("ignore", message=r"You're running the worker with superuser privileges")
