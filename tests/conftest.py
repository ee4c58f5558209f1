"""Shared fixtures: one moto server per test session, and a small pipeline factory."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support import pipeline_spec
from tidegate.spec import Pipeline, parse_pipeline


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """One ThreadedMotoServer for the whole session; every run gets uniquely named resources."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def make_pipeline() -> Callable[..., Pipeline]:
    """`make_pipeline(window={...}, ...)`: the small test pipeline with sections replaced."""

    def build(**overrides: Any) -> Pipeline:
        return parse_pipeline(pipeline_spec(**overrides))

    return build
