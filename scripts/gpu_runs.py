"""The table of the GPU runs in docs/training.md, read from their per-epoch logs (docs/gpu-runs/*.jsonl,
written by `python -m pokedemo.train`): epochs run, seconds (training and validation, the log's last
line), the median of the epochs' training images/s, and the best val mean of the tracks with its epoch.

    python scripts/gpu_runs.py
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

RUNS = Path(__file__).resolve().parent.parent / "docs" / "gpu-runs"


def main() -> int:
    print("| log | epochs | seconds | training images/s (median of the epochs) | best val mean of the tracks (epoch) |")
    print("|---|---|---|---|---|")
    for log in sorted(RUNS.glob("*.jsonl")):
        rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        best = max(rows, key=lambda r: r["val_5shot"])
        rate = statistics.median(r["train_images_per_s"] for r in rows)
        print(f"| {log.stem} | {len(rows)} | {rows[-1]['seconds']:.0f} | {rate:,.0f} | {best['val_5shot']:.4f} "
              f"({best['epoch']}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
