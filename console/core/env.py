"""Small, strict readers for environment values.

Every setting the console takes from the environment goes through one of these, so a
typo in a deployment fails loudly at start-up instead of silently falling back.
"""

import ipaddress
import os
import secrets
import socket
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse


class EnvError(ValueError):
    """An environment variable holds a value the console cannot use."""


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise EnvError(f"{name} must be a boolean (true/false), got {value!r}")


def env_int(name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise EnvError(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and number < minimum or maximum is not None and number > maximum:
        raise EnvError(f"{name} must be between {minimum} and {maximum}, got {number}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def database_from_url(url: str) -> dict:
    """Turn ``postgres://user:pass@host:port/name`` or ``sqlite:///path`` into a DATABASES entry."""
    parsed = urlparse(url)
    if parsed.scheme in {"sqlite", "sqlite3"}:
        # sqlite:///relative/path and sqlite:////absolute/path, as SQLAlchemy spells them.
        path = unquote(parsed.path)[1:]
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": path or ":memory:"}
    if parsed.scheme in {"postgres", "postgresql", "pgsql"}:
        options = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")) or "postgres",
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
        }
    raise EnvError(f"DATABASE_URL scheme {parsed.scheme!r} is not supported (use postgres:// or sqlite:///)")


def secret_from_env_or_file(name: str, file_name: str, default_path: Path) -> str:
    """Read a secret from ``$NAME``, else from the file ``$FILE_NAME`` points at, else from
    ``default_path`` (created with a random value and mode 0600 on first use)."""
    value = os.environ.get(name)
    if value:
        return value
    path = Path(os.environ.get(file_name) or default_path)
    if path.exists():
        text = path.read_text().strip()
        if not text:
            raise EnvError(f"secret file {path} is empty")
        return text
    if os.environ.get(file_name):
        raise EnvError(f"{file_name} points at {path}, which does not exist")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    return text


def private_data_dir(path: Path) -> None:
    """Make ``path`` the console's private data folder: umask 0o077 for this process (new files 0600, new
    folders 0700), the folder created 0700, and the folder, its files and its sub-folders one level down
    (the broker spool) tightened to 0700 / 0600 when an older version left them readable to others."""
    os.umask(0o077)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    _tighten(path, 0o700)
    for child in path.iterdir():
        if child.is_symlink():
            continue
        if child.is_dir():
            _tighten(child, 0o700)
            for grandchild in child.iterdir():
                if grandchild.is_dir() and not grandchild.is_symlink():
                    _tighten(grandchild, 0o700)
        elif child.is_file():
            _tighten(child, 0o600)


def _tighten(path: Path, mode: int) -> None:
    try:
        if path.stat().st_mode & 0o777 & ~mode:
            path.chmod(path.stat().st_mode & 0o777 & mode)
    except OSError:
        pass  # not ours (a shared mount): the umask still protects what we create

LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "[::1]"]


def _host_entry(address: str) -> str:
    """An address as ALLOWED_HOSTS spells it (IPv6 in brackets)."""
    try:
        return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    except ValueError:
        return address


def _machine_addresses() -> list[str]:
    import psutil

    out = []
    for addresses in psutil.net_if_addrs().values():
        for entry in addresses:
            if entry.family in (socket.AF_INET, socket.AF_INET6):
                out.append(_host_entry(entry.address.split("%", 1)[0]))
    return out


def allowed_hosts_for_bind(bind: str) -> list[str]:
    """``ALLOWED_HOSTS`` when ``CONSOLE_ALLOWED_HOSTS`` is not set: the loopback names when the console
    binds loopback; the bind address (and loopback) for one address; the machine's host name and every
    address of its interfaces when it binds all of them (``0.0.0.0`` or ``::``). Never ``*``."""
    bind = (bind or "127.0.0.1").strip().strip("[]")
    if bind == "localhost":
        return list(LOOPBACK_HOSTS)
    try:
        address = ipaddress.ip_address(bind)
    except ValueError:  # a host name
        return [bind, *LOOPBACK_HOSTS]
    if address.is_loopback:
        return list(LOOPBACK_HOSTS)
    if address.is_unspecified:
        hostname = socket.gethostname()
        names = [hostname, *LOOPBACK_HOSTS, *_machine_addresses()]
        return list(dict.fromkeys(n for n in names if n))
    return [_host_entry(bind), *LOOPBACK_HOSTS]
