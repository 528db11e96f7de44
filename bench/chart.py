"""Bar chart of a results JSON: ``chart.py RESULTS.json OUT.png`` (needs matplotlib)."""
from __future__ import annotations

import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

REFERENCE_PREFIX = "nghttp2py"


def draw(data: dict, out: str) -> None:
    """One subplot per case: headline metric per server, CPU µs/req written on the bars."""
    cases = data["cases"]
    cols = 2
    rows = math.ceil(len(cases) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(13, 3.4 * rows), squeeze=False)
    for ax, case in zip(axes.flat, cases):
        done = [o for o in case["outcomes"] if o["status"] == "ok" and o["value"] is not None]
        names = [o["server"] for o in done]
        values = [o["value"] for o in done]
        colors = ["tab:orange" if n.startswith(REFERENCE_PREFIX) else "tab:blue" for n in names]
        bars = ax.barh(names, values, color=colors)
        for bar, o in zip(bars, done):
            label = f" {o['value']:,.1f}" if o["value"] < 100 else f" {o['value']:,.0f}"
            if o.get("cpu_us") is not None:
                label += f"  ({o['cpu_us']:,.1f} µs CPU)"
            ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, label,
                    va="center", fontsize=8)
        better = "higher" if case["higher_is_better"] else "lower"
        ax.set_title(f"{case['key']}. {case['title']}", fontsize=9)
        ax.set_xlabel(f"{case['metric']} ({better} is better)", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, max(values or [1]) * 1.45)
    for ax in list(axes.flat)[len(cases):]:
        ax.axis("off")
    fig.suptitle(f"nghttp2py vs peers — {data.get('machine', {}).get('cpu_model', '')}",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        draw(json.load(f), sys.argv[2])
