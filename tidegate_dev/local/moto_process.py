"""A moto server in a process of its own, with the speed-ups installed.

The embedded server shares one interpreter (one GIL) with whatever calls it: the closer's
worker threads and moto then take turns on a single core. In its own process moto works
while the caller serialises the next request, so a run with several workers can use a
second core. `python -m tidegate_dev.local.moto_process` prints `http://HOST:PORT` once
the server listens, and serves until its standard input closes (the parent exited).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass


@dataclass
class MotoProcess:
    url: str
    process: subprocess.Popen[str]

    @classmethod
    def start(cls) -> MotoProcess:
        process = subprocess.Popen(
            [sys.executable, "-m", "tidegate_dev.local.moto_process"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.startswith("http://"):
            process.kill()
            raise RuntimeError(
                f"moto server process did not start (exit code {process.wait()}): {line!r}"
            )
        return cls(line, process)

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()  # the server's signal to exit
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def main() -> None:
    from moto.server import ThreadedMotoServer

    from tidegate_dev.local import moto_speedups

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto_speedups.apply()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"http://{host}:{port}", flush=True)
    sys.stdin.read()  # returns at end of input: the parent closed it or exited
    server.stop()
    # The tables die with the process: freeing 100,000s of items one by one took minutes.
    os._exit(0)


if __name__ == "__main__":
    main()
