from __future__ import annotations

from collections.abc import Iterator

import pytest

from tidegate_dev.local.server import endpoint


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with endpoint() as url:
        yield url
