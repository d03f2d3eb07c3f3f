"""Concurrent visitors on loopback: N gradio_client visitors x M tasks each, every visitor with its own
species; checks that nobody receives another visitor's classes (cross-talk), and reports p50/p95
latency, errors and server memory. Bounded in count and time.

    python scripts/load_test.py --visitors 10 --tasks 5 [--json docs/load-test.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from gradio_client import Client, handle_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pokedemo.config import ASSETS_DIR  # noqa: E402
from pokedemo.data.gallery import Gallery  # noqa: E402
from scripts.serve import gallery_task, start_server  # noqa: E402


def visitor(url: str, gallery: Gallery, index: int, tasks: int, steps: int, deadline: float, out: dict,
            burst: threading.Barrier | None = None) -> None:
    client = Client(url, verbose=False)
    if burst is not None:  # a class: everyone connected, then all press Run within the same second
        burst.wait()
        time.sleep(np.random.default_rng(index).uniform(0, 1))
    for task in range(tasks):
        if time.perf_counter() > deadline:
            out["errors"].append(f"visitor {index}: deadline reached before task {task + 1}")
            return
        paths, labels, queries, names = gallery_task(gallery, seed=1000 * index + task, n_way=5, n_shot=5, n_query=3)
        started = time.perf_counter()
        try:
            result = client.predict([handle_file(p) for p in paths], labels, [handle_file(q) for q in queries],
                                    steps, False, api_name="/classify")
        except Exception as error:  # noqa: BLE001 - every failure is counted and reported
            out["errors"].append(f"visitor {index} task {task + 1}: {error}")
            continue
        out["latencies"].append(time.perf_counter() - started)
        out["queries_sent"].append(len(queries))
        out["queries_answered"].append(len(result["predictions"]))
        predicted = {p[m]["label"] for p in result["predictions"] for m in ("teacher", "student")}
        if result["classes"] != names or not predicted <= set(names) or len(result["predictions"]) != len(queries):
            out["crosstalk"].append(f"visitor {index} task {task + 1}: got {result['classes']}, sent {names}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--visitors", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--max-seconds", type=float, default=900)
    parser.add_argument("--burst", action="store_true", help="all visitors press Run within one second")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    gallery = Gallery(ASSETS_DIR / "gallery")
    process, url, _ = start_server()
    out = {"latencies": [], "errors": [], "crosstalk": [], "queries_sent": [], "queries_answered": []}
    peak = [0.0]
    try:
        memory = psutil.Process(process.pid)
        deadline = time.perf_counter() + args.max_seconds
        burst = threading.Barrier(args.visitors) if args.burst else None
        threads = [threading.Thread(target=visitor, args=(url, gallery, v, args.tasks, args.steps, deadline, out, burst))
                   for v in range(args.visitors)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            peak[0] = max(peak[0], memory.memory_info().rss / 2**20)
            time.sleep(0.5)
        wall = time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(10)
    latencies = np.asarray(out["latencies"])
    report = {"command": "python scripts/load_test.py " + " ".join(sys.argv[1:]), "visitors": args.visitors,
              "tasks_per_visitor": args.tasks, "completed": len(latencies), "errors": len(out["errors"]),
              "queries_sent": int(sum(out["queries_sent"])), "queries_answered": int(sum(out["queries_answered"])),
              "queries_per_task": sorted(set(out["queries_sent"])),
              "crosstalk": len(out["crosstalk"]), "p50_seconds": float(np.percentile(latencies, 50)) if len(latencies) else None,
              "p95_seconds": float(np.percentile(latencies, 95)) if len(latencies) else None,
              "wall_seconds": wall, "server_peak_rss_mib": peak[0], "burst": args.burst,
              "latencies_seconds": sorted(round(x, 2) for x in latencies), "error_messages": out["errors"][:10],
              "crosstalk_messages": out["crosstalk"][:10]}
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0 if not out["errors"] and not out["crosstalk"] else 1


if __name__ == "__main__":
    sys.exit(main())
