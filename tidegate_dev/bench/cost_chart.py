"""The cost chart: $ per million events against events/s, tidegate (mini-batch off and on,
DynamoDB on-demand and provisioned) beside Managed Flink's minimum, from one bench run."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def draw(cost: dict[str, Any], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display here or in CI
    import matplotlib.pyplot as plt

    curve = cost["curve"]
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    styles = {"on_demand": "-", "provisioned": "--"}
    for latency in sorted({r["mini_batch_s"] for r in curve}):
        for capacity, style in styles.items():
            rows = sorted((r for r in curve if r["mini_batch_s"] == latency
                           and r["capacity"] == capacity), key=lambda r: r["events_per_s"])
            label = (f"tidegate, mini-batch {latency} s" if latency else
                     "tidegate, mini-batch off") + f", {capacity.replace('_', '-')}"
            ax.plot([r["events_per_s"] for r in rows],
                    [r["tidegate_usd_per_million"] for r in rows], style,
                    color="tab:blue" if latency else "tab:orange", label=label)
    flink = sorted({(r["events_per_s"], r["flink_usd_per_million"]) for r in curve})
    ax.plot([f[0] for f in flink], [f[1] for f in flink], color="black", linewidth=2,
            label="Managed Flink minimum (2 KPU) + the same Kinesis")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("events per second")
    ax.set_ylabel("$ per million events")
    ax.set_title(f"Cost per million events (us-east-1 list prices of {cost['prices_date']})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
