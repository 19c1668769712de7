#!/usr/bin/env python3
"""Draws docs/benchmarks.png from two runs of ../shared/bench/compare.sh.

Usage (from the repository root, after `pip install matplotlib`):

    bash ../shared/bench/compare.sh target/release/jetlog 5 > /tmp/always.txt
    JETLOG_ARGS="--sync never" bash ../shared/bench/compare.sh target/release/jetlog 5 > /tmp/never.txt
    python3 docs/bench/chart.py /tmp/always.txt /tmp/never.txt

It reads the ratio table each run prints (mode, nats-server, jetlog, ratio, RSS), writes the
figures to docs/bench/compare.csv, and draws msgs/s per mode for both servers on a log scale
(the modes differ by two orders of magnitude), with jetlog's ratio over each pair.
"""

import csv
import re
import sys
from pathlib import Path

MODES = ["core", "reqrep", "jspub", "jspub1k", "jspubsync", "jsconsume"]


def read_rounds(path):
    """The N of the "best of N alternating rounds" line compare.sh prints, or "?"."""
    match = re.search(r"best of (\d+) alternating rounds", Path(path).read_text())
    return match.group(1) if match else "?"


def read_table(path):
    """mode -> (nats msgs/s, jetlog msgs/s) from a compare.sh output file."""
    rows = {}
    in_table = False
    for line in Path(path).read_text().splitlines():
        fields = line.split()
        if fields[:3] == ["mode", "nats-server", "jetlog"]:
            in_table = True
            continue
        if in_table and fields and fields[0] in MODES and len(fields) >= 3:
            rows[fields[0]] = (float(fields[1]), float(fields[2]))
        elif in_table and line.startswith("("):
            break
    return rows


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    always, never = read_table(sys.argv[1]), read_table(sys.argv[2])
    rounds = read_rounds(sys.argv[1])
    modes = [m for m in MODES if m in always and m in never]
    out_dir = Path(__file__).resolve().parent
    with open(out_dir / "compare.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["mode", "nats_server_run1", "jetlog_always", "nats_server_run2", "jetlog_never"])
        for m in modes:
            w.writerow([m, always[m][0], always[m][1], never[m][0], never[m][1]])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [
        ("nats-server", [always[m][0] for m in modes], "#8c8c8c"),
        ("jetlog --sync always", [always[m][1] for m in modes], "#1f77b4"),
        ("nats-server (2nd run)", [never[m][0] for m in modes], "#c7c7c7"),
        ("jetlog --sync never", [never[m][1] for m in modes], "#2ca02c"),
    ]
    width = 0.2
    fig, ax = plt.subplots(figsize=(10, 5))
    for i, (label, values, color) in enumerate(series):
        xs = [x + (i - 1.5) * width for x in range(len(modes))]
        ax.bar(xs, values, width, label=label, color=color)
    for x, m in enumerate(modes):
        for offset, run in ((-1.0, always), (1.0, never)):
            nats, ours = run[m]
            ax.annotate(
                f"{ours / nats:.2f}x",
                (x + offset * width, max(nats, ours)),
                ha="center",
                va="bottom",
                fontsize=8,
            )
    ax.set_yscale("log")
    ax.set_xticks(range(len(modes)))
    ax.set_xticklabels(modes)
    ax.set_ylabel("msgs/s (log scale)")
    ax.set_title(f"jetlog and nats-server, same machine, same client (compare.sh, best of {rounds})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    target = out_dir.parent / "benchmarks.png"
    fig.savefig(target, dpi=100)
    print(f"wrote {target} and {out_dir / 'compare.csv'}")


if __name__ == "__main__":
    main()
