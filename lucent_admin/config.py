"""Reading configuration from the environment: each reader names its variable in errors."""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url

from projections.errors import ConfigurationError

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(name, f"{raw!r} is not a boolean; use 1/0, true/false, yes/no or on/off")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(name, f"{raw!r} is not a whole number; set it to e.g. {default}") from None
    if value < minimum:
        raise ConfigurationError(name, f"{value} is below the minimum {minimum}")
    return value


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def all_services_default() -> bool:
    """True when Redis, the event store and the database are all the embedded defaults."""
    return not any(env_str(name) for name in ("REDIS_URL", "EVENTSTORE_URI", "DATABASE_URL"))


def data_dir() -> Path:
    """Where the embedded stack keeps its files (SQLite databases, the dev secret)."""
    path = Path(env_str("LUCENT_DATA_DIR", str(BASE_DIR / ".data")))
    path.mkdir(parents=True, exist_ok=True)
    return path


def redis_url(default: str) -> str:
    url = env_str("REDIS_URL", default)
    parsed = urlparse(url)
    if parsed.scheme not in {"redis", "rediss", "unix"} or not (parsed.hostname or parsed.path):
        raise ConfigurationError("REDIS_URL", f"{url!r} is not a Redis URL; use redis://host:6379/0")
    try:
        parsed.port  # noqa: B018 - raises on a non-numeric port
    except ValueError:
        raise ConfigurationError("REDIS_URL", f"{url!r} has a bad port; use redis://host:6379/0") from None
    return url


def database(default_sqlite: Path) -> dict[str, object]:
    url = env_str("DATABASE_URL")
    if not url:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(default_sqlite)}
    try:
        config = dj_database_url.parse(url, conn_max_age=60)
    except (ValueError, KeyError) as exc:
        raise ConfigurationError(
            "DATABASE_URL", f"{url!r} is malformed ({exc}); use postgres://user:pass@host:5432/name"
        ) from None
    if not config.get("ENGINE"):
        raise ConfigurationError("DATABASE_URL", f"{url!r} names no known database; use postgres://…")
    return dict(config)


def secret_key(debug: bool, embedded: bool) -> str:
    """SECRET_KEY from the environment; the embedded stack keeps a generated one on disk."""
    key = env_str("SECRET_KEY")
    if key:
        return key
    if not (debug or embedded):
        raise ConfigurationError(
            "SECRET_KEY", "is not set and DEBUG is off; set SECRET_KEY to a long random string"
        )
    path = data_dir() / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


def env_token(name: str, min_length: int = 16) -> str:
    """A bearer token from the environment ('' when unset): long enough to resist guessing, no spaces."""
    token = env_str(name)
    if token and (len(token) < min_length or any(c.isspace() or not c.isprintable() for c in token)):
        raise ConfigurationError(name, f"must be at least {min_length} printable characters without spaces "
                                       "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return token
