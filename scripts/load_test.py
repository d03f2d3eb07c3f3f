"""Concurrent visitors on loopback, bounded in count and time. Two paths, measured separately:

- `--path page` (default): what a browser sends. Each visitor asks for a random task with its own seed
  ("New random task": gallery picks come back as server paths), then presses Run: the `arm` request,
  the queued first answers, and (after them, as the page chains them) the fine-tuned student and the
  maps, read from Gradio's event stream like the page reads them. Reports per visitor the time from
  pressing Run to the first answers and to the complete answer.
- `--path api`: calls of the `/classify` API (`scripts/api_client.py`: all pictures in one upload), one
  JSON answer per task.

Both check that nobody receives another visitor's classes (cross-talk) and report errors and the
server's peak memory. `--burst`: everyone connects, then all press Run within one second. `--warm`: the
class arrives once the server has finished its start-up work (`app.warm_up`: numba compiling UMAP, the
models' first run), as when the teacher opened the page before the class; without it, as soon as the
page answers.

    python scripts/load_test.py --visitors 30 --tasks 1 --burst [--warm] [--path api] [--json docs/load-burst.json]
"""
from __future__ import annotations

import argparse
import html
import json
import re
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pokedemo.config import ASSETS_DIR  # noqa: E402
from pokedemo.data.gallery import Gallery  # noqa: E402
from pokedemo.task import MAX_QUERY  # noqa: E402
from scripts.api_client import classify  # noqa: E402
from scripts.serve import gallery_task, start_server, wait_until_idle  # noqa: E402


def visitor(url: str, gallery: Gallery, index: int, tasks: int, steps: int, deadline: float, out: dict,
            burst: threading.Barrier | None = None) -> None:
    with httpx.Client(base_url=url, timeout=httpx.Timeout(10.0, read=300.0)) as http:
        _api_tasks(http, url, gallery, index, tasks, steps, deadline, out, burst)


def _api_tasks(http: httpx.Client, url: str, gallery: Gallery, index: int, tasks: int, steps: int, deadline: float,
               out: dict, burst: threading.Barrier | None) -> None:
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
            result = classify(url, paths, labels, queries, steps, False, http=http)   # one upload per task
        except Exception as error:  # noqa: BLE001 - every failure is counted and reported
            out["errors"].append(f"visitor {index} task {task + 1}: {error}")
            continue
        out["latencies"].append(time.perf_counter() - started)
        out["queries_sent"].append(len(queries))
        out["queries_answered"].append(len(result["predictions"]))
        predicted = {p[m]["label"] for p in result["predictions"] for m in ("teacher", "student")}
        if result["classes"] != names or not predicted <= set(names) or len(result["predictions"]) != len(queries):
            out["crosstalk"].append(f"visitor {index} task {task + 1}: got {result['classes']}, sent {names}")


ANSWER = re.compile(r"<span class='who'>[^<]*</span> (?:<b>wrong:</b> )?(.*?)(?: \d+%)?</div>")


class Page:
    """One browser tab's requests: its own session, the page's events found by name in /config."""

    def __init__(self, url: str, config: dict, session: str):
        self.http = httpx.Client(base_url=url, timeout=httpx.Timeout(10.0, read=300.0))
        self.session, self.config = session, config
        self.events = {d["api_name"]: d for d in config["dependencies"] if d.get("api_name")}
        self.values = {c["id"]: c.get("props", {}).get("value") for c in config["components"]}

    def inputs(self, event: str, override: dict | None = None) -> list:
        return [(override or {}).get(i, self.values.get(i)) for i in self.events[event]["inputs"]]

    def call(self, event: str, data: list) -> list:
        """One event as the page sends it (queued: join, then read the event stream until it completes);
        the outputs, also stored as the page's current values."""
        dependency = self.events[event]
        body = {"data": data, "fn_index": dependency["id"], "session_hash": self.session, "event_data": None,
                "trigger_id": (dependency["targets"][0][0] if dependency["targets"] else None)}
        if not dependency["queue"]:
            response = self.http.post("gradio_api/run/predict", json=body)
            response.raise_for_status()
            return self._keep(dependency, response.json()["data"])
        joined = self.http.post("gradio_api/queue/join", json=body)
        if joined.status_code != 200:
            raise RuntimeError(f"{event}: the queue answered {joined.status_code}: {joined.text[:200]}")
        event_id = joined.json()["event_id"]
        with self.http.stream("GET", "gradio_api/queue/data", params={"session_hash": self.session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("event_id") not in (None, event_id):
                    continue
                if message["msg"] == "unexpected_error":
                    raise RuntimeError(f"{event}: {message.get('message')}")
                if message["msg"] == "process_completed":
                    if not message["success"]:
                        raise RuntimeError(f"{event}: {message['output'].get('error') or message.get('title')}")
                    return self._keep(dependency, message["output"]["data"])
        raise RuntimeError(f"{event}: the event stream ended before the event completed")

    def _keep(self, dependency: dict, data: list) -> list:
        values = []
        for component, value in zip(dependency["outputs"], data):
            if isinstance(value, dict) and value.get("__type__") == "update":
                value = value.get("value", self.values.get(component))
            self.values[component] = value
            values.append(value)
        return values


def answered(grid: str) -> tuple[int, set[str]]:
    """(test pictures in the grid, the class names its answers name) of the page's predictions grid."""
    return grid.count("class='cell'"), {html.unescape(name) for name in ANSWER.findall(grid)}


def page_visitor(url: str, config: dict, gallery: Gallery, index: int, tasks: int, steps: int, deadline: float,
                 out: dict, burst: threading.Barrier | None = None) -> None:
    page = Page(url, config, f"load{index:04d}x{np.random.default_rng(index).integers(1 << 30):x}")
    try:
        _page_tasks(page, config, gallery, index, tasks, steps, deadline, out, burst)
    finally:
        page.http.close()


def _page_tasks(page: Page, config: dict, gallery: Gallery, index: int, tasks: int, steps: int, deadline: float,
                out: dict, burst: threading.Barrier | None) -> None:
    by_elem = {c.get("props", {}).get("elem_id"): c["id"] for c in config["components"]}
    steps_id, seed_id = by_elem["steps"], by_elem["task-seed"]
    name_ids = [by_elem[f"class-name-{k}"] for k in range(5)]
    test_ids = [by_elem["queries"]] + [i for e, i in by_elem.items() if e and e.startswith("test-")]
    for task in range(tasks):
        if time.perf_counter() > deadline:
            out["errors"].append(f"visitor {index}: deadline reached before task {task + 1}")
            return
        try:
            page.values[seed_id] = 1000 * index + task            # the visitor's own task, made ready
            asked = page.inputs("random_task")                     # seed, ways, shots, test pictures a class
            page.call("random_task", asked)
            # the visitor's own classes, drawn here from the same gallery: what the answers may name
            names = gallery.random_task(*(int(v) for v in asked), max_queries=MAX_QUERY)[0]
            if [page.values[i] for i in name_ids[:len(names)]] != names:
                raise RuntimeError(f"the page shows classes {[page.values[i] for i in name_ids]}, asked for {names}")
            page.values[steps_id] = steps
            if burst is not None and task == 0:  # a class: every task ready, then all press Run within a second
                burst.wait(timeout=120)
                time.sleep(np.random.default_rng(index).uniform(0, 1))
            pressed = time.perf_counter()                          # Run
            page.call("arm", [])
            first = page.call("answer", page.inputs("answer"))
            first_seconds = time.perf_counter() - pressed
            final = page.call("finish_run", page.inputs("finish_run"))
            complete_seconds = time.perf_counter() - pressed
        except Exception as error:  # noqa: BLE001 - every failure is counted and reported
            out["errors"].append(f"visitor {index} task {task + 1}: {error!r}")
            if burst is not None:
                burst.abort()  # nobody waits for a visitor who will not come
            continue
        sent = sum(len(page.values[i] or []) for i in test_ids)                # test pictures sent
        cells, said = answered(final[0])
        first_cells, first_said = answered(first[0])
        out["first_answer"].append(first_seconds)
        out["latencies"].append(complete_seconds)
        out["queries_sent"].append(sent)
        out["queries_answered"].append(cells)
        if "Done in" not in final[1] or final[2] is None or final[3] is None:
            out["errors"].append(f"visitor {index} task {task + 1}: no complete answer (status: {final[1][:80]})")
        if first_cells != sent or cells != sent or not (said | first_said) <= set(names) | {"none of these"}:
            out["crosstalk"].append(f"visitor {index} task {task + 1}: answers name {sorted(said)}, sent {names}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--visitors", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--max-seconds", type=float, default=900)
    parser.add_argument("--burst", action="store_true", help="all visitors press Run within one second")
    parser.add_argument("--path", choices=["page", "api"], default="page",
                        help="page: what a browser sends when Run is pressed; api: the /classify API")
    parser.add_argument("--warm", action="store_true", help="the class arrives once the server has finished its "
                        "start-up work (as when the teacher opened the page first); default: as soon as it answers")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    gallery = Gallery(ASSETS_DIR / "gallery")
    process, url, _ = start_server()
    out = {"latencies": [], "first_answer": [], "errors": [], "crosstalk": [], "queries_sent": [],
           "queries_answered": []}
    peak = [0.0]
    try:
        memory = psutil.Process(process.pid)
        waited = wait_until_idle(process) if args.warm else 0.0
        deadline = time.perf_counter() + args.max_seconds
        burst = threading.Barrier(args.visitors) if args.burst else None
        if args.path == "page":
            config = httpx.get(url + "config", timeout=30).json()
            threads = [threading.Thread(target=page_visitor, args=(url, config, gallery, v, args.tasks, args.steps,
                                                                   deadline, out, burst)) for v in range(args.visitors)]
        else:
            threads = [threading.Thread(target=visitor, args=(url, gallery, v, args.tasks, args.steps, deadline, out,
                                                              burst)) for v in range(args.visitors)]
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
    latencies, first = np.asarray(out["latencies"]), np.asarray(out["first_answer"])
    percentile = lambda values, q: float(np.percentile(values, q)) if len(values) else None
    report = {"command": "python scripts/load_test.py " + " ".join(sys.argv[1:]), "visitors": args.visitors,
              "tasks_per_visitor": args.tasks, "completed": len(latencies), "errors": len(out["errors"]),
              "queries_sent": int(sum(out["queries_sent"])), "queries_answered": int(sum(out["queries_answered"])),
              "queries_per_task": sorted(set(out["queries_sent"])),
              "crosstalk": len(out["crosstalk"]), "path": args.path,
              # page: from pressing Run to the complete answer (fine-tuned student and maps); api: one call
              "p50_seconds": percentile(latencies, 50), "p95_seconds": percentile(latencies, 95),
              # page only: from pressing Run to the first answers (teacher and student)
              "first_answer_p50_seconds": percentile(first, 50), "first_answer_p95_seconds": percentile(first, 95),
              "wall_seconds": wall, "server_peak_rss_mib": peak[0], "burst": args.burst,
              "warm": args.warm, "waited_for_start_up_seconds": round(waited, 1),
              "latencies_seconds": sorted(round(x, 2) for x in latencies),
              "first_answer_seconds": sorted(round(x, 2) for x in first), "error_messages": out["errors"][:10],
              "crosstalk_messages": out["crosstalk"][:10]}
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0 if not out["errors"] and not out["crosstalk"] else 1


if __name__ == "__main__":
    sys.exit(main())
