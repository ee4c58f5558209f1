"""boto3 clients, created lazily and once per process (cold start), with botocore retries.

boto3 comes from the Lambda runtime; it is imported here, on first use, so modules that
never talk to AWS (window arithmetic, decoding) stay cheap to import.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

# botocore's standard retry mode backs off with jitter on throttling and 5xx; the handler's
# own time budget (Lambda remaining time) bounds the whole batch on top of it.
RETRY_ATTEMPTS = 6


# Called with (service, client) for every client made: the local runner's fault injection
# and the benchmark's request counters attach here. Empty in Lambda.
CLIENT_HOOKS: list[Callable[[str, Any], None]] = []


def client(service: str) -> Any:
    return _cached_client(service)


@cache
def _cached_client(service: str) -> Any:
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": RETRY_ATTEMPTS},
        connect_timeout=5,
        read_timeout=20,
        tcp_keepalive=True,
    )
    made = _session().client(service, config=config)
    for hook in CLIENT_HOOKS:
        hook(service, made)
    return made


@cache
def _loader() -> Any:
    """Service models are static: load them once per process, not once per session (a
    third of a second each time the local runner or a test starts afresh)."""
    from botocore.loaders import create_loader

    return create_loader()


@cache
def _session() -> Any:
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    core.register_component("data_loader", _loader())
    return boto3.session.Session(botocore_session=core)


def reset_clients() -> None:
    """Forget cached clients (tests and the local runner switch endpoints); clients made
    afterwards read the endpoint and credentials from the environment again."""
    _cached_client.cache_clear()
    _session.cache_clear()


def error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None
