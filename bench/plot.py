"""Latency against throughput for aiocr and the peer, from bench/compare.sh's loadgen summaries.

usage: plot.py WORK_DIR OUT.png   (reads aiocr-c*.json and peer-w*-c*.json in WORK_DIR)
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

work, out = sys.argv[1], sys.argv[2]
series = {
    "aiocr (sync decode)": [f"aiocr-c{c}" for c in (1, 16, 64)],
    "ddddocr-fastapi, 1 worker": [f"peer-w1-c{c}" for c in (1, 16, 64)],
    "ddddocr-fastapi, 2 workers": [f"peer-w2-c{c}" for c in (1, 16, 64)],
}
fig, ax = plt.subplots(figsize=(8, 5))
for label, names in series.items():
    points = []
    for name in names:
        path = os.path.join(work, name + ".json")
        if os.path.exists(path):
            summary = json.load(open(path))
            points.append((summary["requests_per_s"], summary["latency_ms"]["uncorrected"]["p50"],
                           summary["latency_ms"]["uncorrected"]["p99"], summary["connections"]))
    if not points:
        continue
    xs = [p[0] for p in points]
    line, = ax.plot(xs, [p[1] for p in points], marker="o", label=f"{label}: p50")
    ax.plot(xs, [p[2] for p in points], marker="^", linestyle="--", color=line.get_color(),
            label=f"{label}: p99")
    for x, _, p99, connections in points:
        ax.annotate(f"c={connections}", (x, p99), textcoords="offset points", xytext=(4, 4), fontsize=8)
ax.set_xlabel("throughput (images/s)")
ax.set_ylabel("latency (ms)")
ax.set_yscale("log")
ax.set_title("Sync captcha decodes: latency against throughput (same machine, same run)")
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(out, dpi=110)
