"""Measure the served app through its API (`scripts/api_client.py`: all pictures in one upload): start-up
time, task latency (5-way 5-shot with 15 queries: 40 pictures; student fine-tuned, both t-SNE maps drawn)
and server memory over repeated tasks.

    python scripts/bench_app.py [--tasks 20] [--json docs/app-benchmark.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import psutil
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pokedemo.config import ASSETS_DIR  # noqa: E402
from pokedemo.data.gallery import Gallery  # noqa: E402
from scripts.api_client import classify  # noqa: E402
from scripts.serve import gallery_task, start_server  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    gallery = Gallery(ASSETS_DIR / "gallery")
    process, url, startup = start_server()
    http = httpx.Client(base_url=url, timeout=httpx.Timeout(10.0, read=300.0))
    try:
        memory = psutil.Process(process.pid)
        latencies, rss, sent = [], [], []
        for task in range(args.tasks):
            paths, labels, queries, names = gallery_task(gallery, seed=task, n_query=3)
            started = time.perf_counter()
            out = classify(url, paths, labels, queries, args.steps, True, http=http)
            latencies.append(time.perf_counter() - started)
            assert out["classes"] == names and out["maps"]["teacher"] and out["maps"]["student"]
            assert len(out["predictions"]) == len(queries), "every query sent must be answered"
            sent.append({"supports": len(paths), "queries": len(queries)})
            rss.append(memory.memory_info().rss / 2**20)
            print(f"task {task + 1}: {len(paths)} supports, {len(queries)} queries, {latencies[-1]:.2f} s, "
                  f"server RSS {rss[-1]:.0f} MiB", flush=True)
    finally:
        http.close()
        process.terminate()
        process.wait(10)
    report = {"command": "python scripts/bench_app.py " + " ".join(sys.argv[1:]), "startup_seconds": startup,
              "first_task_seconds": latencies[0], "median_task_seconds": statistics.median(latencies),
              "max_task_seconds": max(latencies), "tasks": args.tasks, "fine_tune_steps": args.steps,
              # counted from what was sent (and answered), not from the settings
              "supports_per_task": sorted({t["supports"] for t in sent}),
              "queries_per_task": sorted({t["queries"] for t in sent}),
              "rss_mib_after_first": rss[0], "rss_mib_after_last": rss[-1], "rss_mib_max": max(rss),
              # growth per task over the second half of the run: near 0 once memory has levelled off
              "rss_mib_per_task_second_half": _slope(rss[len(rss) // 2:]),
              "latencies_seconds": [round(x, 3) for x in latencies], "rss_mib": [round(x, 1) for x in rss]}
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


def _slope(values: list[float]) -> float:
    """Least-squares slope of values against their index (0 for fewer than 2 values)."""
    if len(values) < 2:
        return 0.0
    mean_x, mean_y = (len(values) - 1) / 2, statistics.fmean(values)
    return sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values)) / \
        sum((i - mean_x) ** 2 for i in range(len(values)))


if __name__ == "__main__":
    sys.exit(main())
