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
    parser.add_argument("--cost-chart", metavar="PNG",
                        help="also draw $ per million events against events/s (matplotlib)")

    sections = parser.add_subparsers(dest="bench_section", required=False)
    sim = sections.add_parser(
        "close-sim", help="closer fan-out over many open windows: windows/s per worker count")
    sim.add_argument("--windows", type=int, default=100_000,
                     help="open windows written before closing (default 100000)")
    sim.add_argument("--workers", default="1,2,4,8", help="worker counts (default 1,2,4,8)")
    sim.add_argument("--shards", type=int,
                     help="index shards of the pipeline (default: the largest worker count)")
    sim.add_argument("--json", action="store_true", help="one JSON object on stdout")
