"""The tables of training runs in docs/training.md, read from their per-epoch logs (FOLDER/*.jsonl, written by
`python -m pokedemo.train`; default docs/gpu-runs, and docs/cpu-runs): epochs run, seconds (training and
validation, the log's last line), the median of the epochs' training images/s, and the best val mean of the
tracks with its epoch and its tracks.

    python scripts/run_logs.py [docs/gpu-runs | docs/cpu-runs]
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from pokedemo.tracks import TRACKS  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    folder = ROOT / (argv[0] if argv else "docs/gpu-runs")
    print("| log | epochs | seconds | training images/s (median of the epochs) | best val mean of the tracks (epoch) "
          f"| its {' / '.join(TRACKS)} |")
    print("|---|---|---|---|---|---|")
    for log in sorted(folder.glob("*.jsonl")):
        rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        best = max(rows, key=lambda r: r["val_5shot"])
        rate = statistics.median(r["train_images_per_s"] for r in rows)
        tracks = " / ".join(f"{best['val_tracks'][t]:.4f}" for t in TRACKS)
        print(f"| {log.stem} | {len(rows)} | {rows[-1]['seconds']:.0f} | {rate:,.0f} | {best['val_5shot']:.4f} "
              f"({best['epoch']}) | {tracks} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
