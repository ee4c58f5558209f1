"""`tidegate bench` arguments: argparse only, so building the CLI parser stays cheap."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="smaller runs, under a minute")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--rate", type=float, default=1_000.0,
                        help="events/s for the cost model (default 1000)")
    parser.add_argument("--no-peers", action="store_true",
                        help="skip Bytewax / Quix Streams (never installed with --quick)")
