"""Production settings: secure cookies, HSTS and a clean `manage.py check --deploy` off the embedded dev stack."""
from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

from tests.integration.operations.test_configuration import MANAGE, assert_one_line_naming, start

PRODUCTION = {
    "DEBUG": "0",
    "ALLOWED_HOSTS": "lucent.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://lucent.example.com",
    "REDIS_URL": "redis://:redis-pw@redis.internal:6379/0",
    "EVENTSTORE_URI": "esdb+discover://admin:changeit@esdb.internal:2113",
    "DATABASE_URL": "postgres://lucent:db-pw@pg.internal:5432/lucent",
    "LUCENT_SSL_REDIRECT": "1",
    "LUCENT_HSTS_PRELOAD": "1",
    "LUCENT_TRUSTED_PROXY_HEADER": "X-Forwarded-Proto",
}
SHOW = ("import django, json; django.setup(); from django.conf import settings as s; print(json.dumps({k: getattr(s, k) "
        "for k in ('SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS', 'SECURE_SSL_REDIRECT', "
        "'SECURE_PROXY_SSL_HEADER')}))")


def settings_of(tmp_path: Path, **env: str) -> dict[str, object]:
    result = start([sys.executable, "-c", SHOW], tmp_path, **env)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_check_deploy_is_clean_with_production_settings(tmp_path: Path) -> None:
    result = start([*MANAGE, "--deploy", "--fail-level", "WARNING"], tmp_path, SECRET_KEY=secrets.token_urlsafe(50),
                   **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


def test_production_cookies_are_secure_and_hsts_is_on(tmp_path: Path) -> None:
    assert settings_of(tmp_path, SECRET_KEY=secrets.token_urlsafe(50), **PRODUCTION) == {
        "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True, "SECURE_HSTS_SECONDS": 365 * 24 * 3600,
        "SECURE_SSL_REDIRECT": True, "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
    }


def test_the_embedded_dev_stack_works_over_plain_http(tmp_path: Path) -> None:
    """`make run` serves http://127.0.0.1:8000 with DEBUG off: cookies must not be HTTPS-only there."""
    assert settings_of(tmp_path, LUCENT_EMBEDDED="1") == {
        "SESSION_COOKIE_SECURE": False, "CSRF_COOKIE_SECURE": False, "SECURE_HSTS_SECONDS": 0,
        "SECURE_SSL_REDIRECT": False, "SECURE_PROXY_SSL_HEADER": None,
    }


def test_a_malformed_proxy_header_stops_start_up(tmp_path: Path) -> None:
    result = start(MANAGE, tmp_path, LUCENT_EMBEDDED="1", LUCENT_TRUSTED_PROXY_HEADER="X-Forwarded-Proto: https")
    assert_one_line_naming(result, "LUCENT_TRUSTED_PROXY_HEADER")
