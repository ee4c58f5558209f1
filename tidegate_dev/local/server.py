"""An embedded moto server on 127.0.0.1, or any AWS-compatible endpoint."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

from tidegate_dev.local import moto_speedups

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def _has_credentials() -> bool:
    import boto3

    return boto3.session.Session().get_credentials() is not None


@contextmanager
def endpoint(url: str | None = None, own_process: bool = False) -> Iterator[str]:
    """Yield an endpoint URL with AWS_ENDPOINT_URL (and fake credentials for moto) set.

    boto3 reads AWS_ENDPOINT_URL itself, so the handlers run unmodified against it.
    `own_process`: moto runs in a process of its own (moto_process.py), not on a thread
    of this one.
    """
    saved = {k: os.environ.get(k) for k in (*FAKE_CREDENTIALS, "AWS_ENDPOINT_URL")}
    server = None
    process = None
    try:
        if url is None and own_process:
            from tidegate_dev.local.moto_process import MotoProcess

            process = MotoProcess.start()
            url = process.url
            os.environ.update(FAKE_CREDENTIALS)
        elif url is None:
            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.ERROR)
            moto_speedups.apply()
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            url = f"http://{host}:{port}"
            os.environ.update(FAKE_CREDENTIALS)
        else:
            os.environ.setdefault("AWS_DEFAULT_REGION", FAKE_CREDENTIALS["AWS_DEFAULT_REGION"])
            host = urlparse(url).hostname or ""
            if host in ("127.0.0.1", "localhost", "::1") and not _has_credentials():
                # A local emulator accepts any credentials; a real endpoint gets the chain's.
                os.environ.update(FAKE_CREDENTIALS)
        os.environ["AWS_ENDPOINT_URL"] = url
        from tidegate.aws import reset_clients

        reset_clients()
        yield url
    finally:
        if server is not None:
            server.stop()
        if process is not None:
            process.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        from tidegate.aws import reset_clients

        reset_clients()
