"""boto3 clients, created lazily and once per process (cold start), with botocore retries.

boto3 comes from the Lambda runtime; it is imported here, on first use, so modules that
never talk to AWS (window arithmetic, decoding) stay cheap to import.
"""

from __future__ import annotations

from functools import cache
from typing import Any

# botocore's standard retry mode backs off with jitter on throttling and 5xx; the handler's
# own time budget (Lambda remaining time) bounds the whole batch on top of it.
RETRY_ATTEMPTS = 6


def client(service: str) -> Any:
    return _cached_client(service)


@cache
def _cached_client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": RETRY_ATTEMPTS},
        connect_timeout=5,
        read_timeout=20,
        tcp_keepalive=True,
    )
    return boto3.session.Session().client(service, config=config)


def reset_clients() -> None:
    """Forget cached clients (tests and the local runner switch endpoints)."""
    _cached_client.cache_clear()


def error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None
