"""Write docs/app-and-load.md from the measurements' JSON files in docs/ (made by the commands each section
names: scripts/bench_app.py and scripts/load_test.py, on a clean clone with cold caches). Nothing here is
measured; every figure is read from those files.

    python scripts/app_doc.py
"""
from __future__ import annotations

import json
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
TARGETS = {"first": 5.0, "complete": 12.0, "api_task": 2.0, "startup": 10.0, "memory_mib": 2048}


def read(name: str) -> dict:
    return json.loads((DOCS / name).read_text())


def verdict(value: float, target: float) -> str:
    return f"target <= {target:g} s: {'met' if value <= target else 'missed'}"


def burst_table(run: dict) -> str:
    return "\n".join([
        "| | first answers (teacher and student) | complete (fine-tuned student and maps) |",
        "|---|---|---|",
        f"| p50 | {run['first_answer_p50_seconds']:.1f} s | {run['p50_seconds']:.1f} s |",
        f"| p95 | **{run['first_answer_p95_seconds']:.1f} s** ({verdict(run['first_answer_p95_seconds'], TARGETS['first'])})"
        f" | **{run['p95_seconds']:.1f} s** ({verdict(run['p95_seconds'], TARGETS['complete'])}) |"])


def repeats(first: dict) -> str:
    """The same command run again (docs/load-burst-warm-2.json, -3.json, ...), when there are such runs."""
    runs = [first] + [json.loads(p.read_text()) for p in sorted(DOCS.glob("load-burst-warm-*.json"))]
    if len(runs) == 1:
        return ""
    pairs = ", ".join(f"{r['first_answer_p95_seconds']:.1f} / {r['p95_seconds']:.1f} s" for r in runs)
    worst = max(r["errors"] + r["crosstalk"] for r in runs)
    return (f" The same command run {len(runs)} times in a row, each on a new server with cold caches (the "
            f"others' JSON files: `docs/load-burst-warm-2.json` ...), gave first-answer / complete p95 of {pairs}; "
            f"at most {worst} errors and cross-talk in any run.")


def counts(run: dict) -> str:
    return (f"{run['completed']} completed, {run['errors']} errors, {run['crosstalk']} cross-talk, "
            f"{run['queries_sent']} test pictures sent and {run['queries_answered']} answered, "
            f"{run['wall_seconds']:.1f} s wall, server peak RSS {run['server_peak_rss_mib']:,.0f} MiB")


def main() -> int:
    bench, long = read("app-benchmark.json"), read("app-benchmark-120.json")
    cold, warm, three = read("load-burst.json"), read("load-burst-warm.json"), read("load-burst-3.json")
    api_burst, api_many = read("load-burst-api.json"), read("load-test.json")
    rss = bench["rss_mib"]
    doc = f"""# App and load measurements (this 2-core machine)

Against `python app.py` on loopback, with the shipped teacher and student, each command on a **clean
clone with cold caches** (fresh `TMPDIR`, `NUMBA_CACHE_DIR` and `GRADIO_TEMP_DIR`, no data folder), one
after the other. The load script's clients run on the same 2 cores as the server. This page is written
from the JSON files beside it by `python scripts/app_doc.py`.

## One visitor at a time, through the API

`{bench['command']}`: each task is a seeded 5-way 5-shot gallery task sent to the `classify` API by
`scripts/api_client.py` (all pictures in one upload), counted as sent: **{bench['supports_per_task'][0]} supports and
{bench['queries_per_task'][0]} queries a task**; student fine-tuned {bench['fine_tune_steps']} steps, both t-SNE maps' points computed:

| | measured |
|---|---|
| `python app.py` to a page that answers | {bench['startup_seconds']:.1f} s ({verdict(bench['startup_seconds'], TARGETS['startup'])}) |
| median API task, first task included | **{bench['median_task_seconds']:.2f} s** (first {bench['first_task_seconds']:.2f} s, max {bench['max_task_seconds']:.2f} s; {verdict(bench['max_task_seconds'], TARGETS['api_task'])} by every task) |
| server RSS after task 1 / 10 / 20 / 30 | {rss[0]:,.0f} / {rss[9]:,.0f} / {rss[19]:,.0f} / {rss[29]:,.0f} MiB (max {bench['rss_mib_max']:,.0f}) |

The first tasks meet a fresh server: its start-up work (`app.warm_up`: the models' first run, t-SNE's,
the photo tasks' background banks) runs in the background at a lower priority, and last, once the server
is quiet (`priority.wait_until_quiet`), numba compiles UMAP: that holds Python's lock, which a lower
priority does not give back, so it waits for the visitors' work instead. The gallery's embeddings are read
from `assets/gallery-embeddings.safetensors` at start-up.

Memory levels off: the same benchmark over 120 tasks (`{long['command']}`, clean clone, cold
caches) reads {long['rss_mib'][0]:,.0f} MiB after task 1,
{long['rss_mib'][29]:,.0f} after 30, {long['rss_mib'][59]:,.0f} after 60 and {long['rss_mib'][-1]:,.0f} after 120 (max {long['rss_mib_max']:,.0f}),
{long['rss_mib_per_task_second_half']:.2f} MiB per task over tasks 61-120. Tasks sent back to back leave the
server no quiet second, so it does not compile UMAP meanwhile (numba's code adds memory): the runs below
with `--warm` start from a server that has, and show the higher peak.

## A class of 30 on the page

What a browser sends (`--path page`): each of 30 visitors asks for its own random task ("New random
task", seeded by the visitor: gallery pictures come back as server paths), all wait on a barrier, then
each presses Run within one random second: the `arm` request, the queued first answers, then the
chained fine-tuning and maps, read from Gradio's event stream as the page reads them. 5 classes x 5
supports and {cold['queries_per_task'][0]} test pictures a task, counted from the pictures sent and the cells of the page's
answer grid.

**The class arrives at a server that has finished its start-up** (the teacher opened the page first):
`{warm['command']}` (waited {warm['waited_for_start_up_seconds']:.0f} s after the page first answered):

{burst_table(warm)}

{counts(warm)}.{repeats(warm)}

**The class arrives as soon as the server answers** (its start-up work still running, below the
visitors' priority; UMAP's compiling waits until they are done): `{cold['command']}`:

{burst_table(cold)}

{counts(cold)}.

`{three['command']}` (each visitor runs 3 tasks in a row, asking for a new random task before each Run,
as soon as the server answers): **{three['completed']} completed, {three['errors']} errors, {three['crosstalk']} cross-talk**, {three['queries_sent']} test pictures sent and
{three['queries_answered']} answered, server peak RSS **{three['server_peak_rss_mib']:,.0f} MiB** (target <= 2 GB: {'met' if three['server_peak_rss_mib'] <= TARGETS['memory_mib'] else 'missed'}); first answers p50
{three['first_answer_p50_seconds']:.1f} s, p95 {three['first_answer_p95_seconds']:.1f} s; complete p50 {three['p50_seconds']:.1f} s, p95 {three['p95_seconds']:.1f} s; {three['wall_seconds']:.1f} s wall.

The queue holds 40 events (`POKEDEMO_QUEUE_SIZE`): a class of 30 has at most 30 waiting at once (one
per visitor: the later phase joins when the first has left); a 41st event at the same moment is told
the queue is full.

## Through the API, many visitors

`{api_burst['command']}` (all pictures of a task in one upload, as soon as the server answers):
{counts(api_burst)}; complete answer p50 {api_burst['p50_seconds']:.1f} s, p95 {api_burst['p95_seconds']:.1f} s.

`{api_many['command']}` (10 concurrent visitors, 5 tasks each, each visitor with its own species):
{counts(api_many)}; p50 {api_many['p50_seconds']:.1f} s, p95 {api_many['p95_seconds']:.1f} s.

CI runs the same script with 3 visitors on each path (`tests/test_load.py`). Where a task's CPU goes:
[task-profile.md](task-profile.md). Earlier measurements by the same commands are in these JSON files'
git history (for example `git show cd6819e:docs/load-burst.json`, before the gallery's embeddings were
shipped and the maps made cheaper).
"""
    (DOCS / "app-and-load.md").write_text(doc, encoding="utf-8")
    print(doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
