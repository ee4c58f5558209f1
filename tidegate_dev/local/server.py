"""An embedded moto server on 127.0.0.1, or any AWS-compatible endpoint."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@contextmanager
def endpoint(url: str | None = None) -> Iterator[str]:
    """Yield an endpoint URL with AWS_ENDPOINT_URL (and fake credentials for moto) set.

    boto3 reads AWS_ENDPOINT_URL itself, so the handlers run unmodified against it.
    """
    saved = {k: os.environ.get(k) for k in (*FAKE_CREDENTIALS, "AWS_ENDPOINT_URL")}
    server = None
    try:
        if url is None:
            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.ERROR)
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            url = f"http://{host}:{port}"
            os.environ.update(FAKE_CREDENTIALS)
        else:
            for name, value in FAKE_CREDENTIALS.items():
                if name.startswith("AWS_REGION") or name == "AWS_DEFAULT_REGION":
                    os.environ.setdefault(name, value)
        os.environ["AWS_ENDPOINT_URL"] = url
        from tidegate.aws import reset_clients

        reset_clients()
        yield url
    finally:
        if server is not None:
            server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        from tidegate.aws import reset_clients

        reset_clients()
