"""boto3 clients, created lazily and once per process (cold start), with botocore retries.

boto3 comes from the Lambda runtime; it is imported here, on first use, so modules that
never talk to AWS (window arithmetic, decoding) stay cheap to import.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from typing import Any

# botocore's standard retry mode backs off with jitter on throttling and 5xx; a handler's
# time budget (from the Lambda context's remaining time) stops retrying when it runs out.
RETRY_ATTEMPTS = 6
_MAX_BACKOFF_S = 20  # botocore's standard mode cap

_deadline: ContextVar[float | None] = ContextVar("tidegate_retry_deadline", default=None)


class OutOfTime(Exception):  # noqa: N818 - reads as the condition it reports
    """A throttled call would be retried past the handler's time budget: give up on it so
    the handler can report partial failure before Lambda times it out."""


@contextmanager
def retry_budget(seconds: float | None) -> Iterator[None]:
    """Within the block, botocore retries only while `seconds` have not passed."""
    token = _deadline.set(None if seconds is None else time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def _guard_retry(
    response: Any = None, caught_exception: Any = None, attempts: int = 1, **kwargs: Any
) -> None:
    # botocore asks `needs-retry` handlers after every attempt, before it sleeps and
    # retries; raising stops the retry loop (a returned value cannot veto the standard
    # handler). A failed attempt is not retried when botocore's longest possible backoff
    # (throttling: up to min(2**(attempt-1), 20) s) would end past the deadline: checking
    # only "is the deadline passed" let one sleep overrun it by up to 20 s. A success past
    # the deadline still counts.
    deadline = _deadline.get()
    if deadline is None:
        return
    failed = caught_exception is not None or (
        response is not None and response[0].status_code >= 400
    )
    if failed and time.monotonic() + _longest_backoff(attempts) >= deadline:
        raise OutOfTime(f"retry budget spent ({kwargs.get('event_name', 'a call')})")


def _longest_backoff(attempts: int) -> float:
    return float(min(2 ** max(attempts - 1, 0), _MAX_BACKOFF_S))


# Called with (service, client) for every client made: the local runner's fault injection
# and the benchmark's request counters attach here. Empty in Lambda.
CLIENT_HOOKS: list[Callable[[str, Any], None]] = []


# boto3 sessions are not thread-safe to create clients from; clients themselves are. The
# closer's local worker threads may ask for their first sink client at the same moment.
_client_lock = threading.Lock()


def client(service: str) -> Any:
    with _client_lock:
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
    made.meta.events.register_first("needs-retry", _guard_retry)
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
        code = response.get("Error", {}).get("Code")
        return code if isinstance(code, str) else None
    return None
