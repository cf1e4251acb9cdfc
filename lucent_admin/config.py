"""Reading configuration from the environment: each reader names its variable in errors."""
from __future__ import annotations

import os
import re
import secrets
import stat
from pathlib import Path
from urllib.parse import quote

import dj_database_url

from projections import connection
from projections.connection import Target
from projections.errors import ConfigurationError, redact

# What logs and error messages print of a URI: its password masked (``user:***@host``); the same function
# masks the engine's own messages (projections.errors.redact), and every ConfigurationError applies it.
masked = redact

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
    """Where the embedded stack keeps its files (SQLite databases, the dev secret): private to its owner."""
    return private_dir(Path(env_str("LUCENT_DATA_DIR", str(BASE_DIR / ".data"))))


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner may enter (0700): created so, or tightened if it is ours."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        _tighten(path, 0o700)
    except OSError as exc:
        raise ConfigurationError("LUCENT_DATA_DIR", f"cannot create {path} ({exc}); point it at a writable directory") from None
    return path


def private_file(path: Path) -> Path:
    """``path`` as a file only its owner may read (0600): created empty so, or tightened if it is ours."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        _tighten(path, 0o600)
    except OSError as exc:
        raise ConfigurationError("LUCENT_DATA_DIR", f"cannot create {path} ({exc}); point it at a writable directory") from None
    return path


def private_tree(path: Path) -> None:
    """``path`` and everything under it private to its owner: directories 0700, files 0600 (those it owns)."""
    private_dir(path)
    for child in path.rglob("*"):
        if not child.is_symlink():
            _tighten(child, 0o700 if child.is_dir() else 0o600)


def _tighten(path: Path, mode: int) -> None:
    info = path.stat()
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
        path.chmod(mode)


def redis_url(default: str) -> str:
    """REDIS_URL: one server, a Redis Cluster or a Sentinel-managed primary (``projections.connection.FORMS``)."""
    url = env_str("REDIS_URL", default)
    connection.parse(url)
    return url


def service_url(name: str, redis: str, what: str) -> Target:
    """A Redis for Celery or Channels (``name``: LUCENT_BROKER_URL, LUCENT_CHANNELS_URL), by default REDIS_URL's:
    one server or a Sentinel-managed primary. Neither can use a Redis Cluster: with REDIS_URL a cluster, ``name``
    must name another Redis."""
    url = env_str(name)
    if not url:
        target = connection.parse(redis)
        if target.kind == connection.CLUSTER:
            raise ConfigurationError(name, f"{what} cannot use a Redis Cluster, and REDIS_URL is one: set {name} to "
                                           "a redis:// or redis+sentinel:// URL of a Redis outside the cluster")
        return target
    target = connection.parse(url, name)
    if target.kind == connection.CLUSTER:
        raise ConfigurationError(name, f"{what} cannot use a Redis Cluster; use a redis:// or redis+sentinel:// URL")
    return target


def celery_url(target: Target) -> tuple[str, dict[str, str]]:
    """Celery's (kombu's) URL of ``target`` and the transport options it needs (a Sentinel's ``master_name``)."""
    if target.kind != connection.SENTINEL:
        return target.url, {}
    auth = f"{quote(target.username or '')}:{quote(target.password)}@" if target.password else ""
    return ";".join(f"sentinel://{auth}{host}:{port}/{target.db}" for host, port in target.nodes), \
        {"master_name": target.service}


def channel_host(target: Target) -> str | dict[str, object]:
    """channels_redis's host entry of ``target`` (Sentinels with the primary's name, or the URL)."""
    if target.kind != connection.SENTINEL:
        return target.url
    return {"sentinels": list(target.nodes), "master_name": target.service, "db": target.db,
            "password": target.password, "username": target.username}


def database(default_sqlite: Path) -> dict[str, object]:
    """DATABASE_URL as Django's database settings; unset, ``default_sqlite`` (created private, 0600)."""
    url = env_str("DATABASE_URL")
    if not url:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(private_file(default_sqlite))}
    try:
        config = dj_database_url.parse(url, conn_max_age=60)
    except (ValueError, KeyError) as exc:
        raise ConfigurationError(
            "DATABASE_URL", f"{masked(url)!r} is malformed ({exc}); use postgres://user:pass@host:5432/name"
        ) from None
    if not config.get("ENGINE"):
        raise ConfigurationError("DATABASE_URL", f"{masked(url)!r} names no known database; use postgres://…")
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
    return _generated_secret(data_dir() / "secret_key")


def _generated_secret(path: Path) -> str:
    """The key in ``path``, written first if absent: atomically, so processes starting at once share one key.

    The key is written whole to a private temporary file, which is then hard-linked to ``path``; a link
    fails if ``path`` exists, so exactly one process's key wins and every process reads that one back.
    """
    if not path.exists():
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(50))
                out.flush()
                os.fsync(out.fileno())
            os.link(draft, path)
        except FileExistsError:
            pass  # another process linked its key first: that one is the key
        finally:
            draft.unlink(missing_ok=True)
    _tighten(path, 0o600)
    key = path.read_text().strip()
    if not key:
        raise ConfigurationError("SECRET_KEY", f"the generated key file {path} is empty; delete it to generate another")
    return key


def env_token(name: str, min_length: int = 16) -> str:
    """A bearer token from the environment ('' when unset): long enough to resist guessing, no spaces."""
    token = env_str(name)
    if token and (len(token) < min_length or any(c.isspace() or not c.isprintable() for c in token)):
        raise ConfigurationError(name, f"must be at least {min_length} printable characters without spaces "
                                       "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return token


_HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")


def proxy_ssl_header(name: str) -> tuple[str, str] | None:
    """SECURE_PROXY_SSL_HEADER from the header a trusted proxy sets to ``https`` (e.g. X-Forwarded-Proto)."""
    header = env_str(name)
    if not header:
        return None
    if not _HEADER_NAME.fullmatch(header):
        raise ConfigurationError(name, f"{header!r} is not a header name; use e.g. X-Forwarded-Proto")
    return f"HTTP_{header.upper().replace('-', '_')}", "https"
