"""Draw benchmark.png from benchmark.json; runs in .bench/plot's Python, which has matplotlib.

Usage: python bench/chart.py benchmark.json benchmark.png
"""

from __future__ import annotations

import json
import statistics
import sys
from typing import Any

import matplotlib  # type: ignore[import-not-found]
import matplotlib.ticker  # type: ignore[import-not-found]

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # type: ignore[import-not-found]

STYLE = {
    "pg_dump": ("black", "o", "-"),
    "sync (full)": ("tab:blue", "s", "-"),
    "sync (unchanged)": ("tab:cyan", "s", "--"),
    "check": ("tab:green", "^", "-"),
    "compare": ("tab:orange", "D", "-"),
    "migra": ("tab:red", "x", ":"),
}


def main(data_path: str, png_path: str) -> None:
    with open(data_path) as fh:
        doc: dict[str, Any] = json.load(fh)
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    for command, (color, marker, line) in STYLE.items():
        xs, ys = [], []
        for scale in doc["scales"]:
            samples = scale["samples"].get(command)
            if samples:
                xs.append(scale["scale"])
                ys.append(statistics.median(s["wall_s"] for s in samples))
        if xs:
            ax.plot(xs, ys, marker=marker, linestyle=line, color=color, label=command)
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:g}")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(plain)
    ax.set_xlabel("S (tables; also S functions, S/5 views, ...)")
    ax.set_ylabel("median wall time (s)")
    ax.set_title("pg-schema-sync vs bare pg_dump --schema-only and migra")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
