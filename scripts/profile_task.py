"""Where one page task's time goes: a 5-way 5-shot task with 25 test pictures (the page's example tasks),
phase by phase, in the app's own process and code path, CPU seconds (process_time: both cores' work) and
wall seconds, median over the tasks; then the served app's whole CPU per task through the API (the
server process's CPU time, so Gradio's own overhead is in it). For gallery pictures (whose embeddings
the app reads at start-up: assets/gallery-embeddings.safetensors) and for the visitor's own pictures (here:
the same pictures mirrored, saved as new files, so that none is the gallery's) and for a class's phone photos
(gallery supports; the test pictures rendered like phone photos by the page's switch, `task.photo_like`, in the
app's process, and sent to the served app as new files: where the photo-ready views and the student's photo
blend do their work), those once more in the app's process with the student's photo blend off (its cost).

    python scripts/profile_task.py [--tasks 10] [--out docs/task-profile-now.md]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PHASES = ["read pictures (decode, preprocess)", "teacher and student answer (embed, classify)",
          "fine-tune the student (5 steps) and its answer", "maps (3 t-SNE, aligned)", "answers as HTML"]


def own_copies(paths: list[str], folder: Path) -> list[str]:
    """Each picture mirrored and saved under a new name: the visitor's own pictures, none of them the gallery's."""
    from PIL import Image, ImageOps

    copies = []
    for path in paths:
        copy = folder / f"upload-{len(copies)}-{Path(path).stem}.png"
        ImageOps.mirror(Image.open(path).convert("RGBA")).save(copy)
        copies.append(str(copy))
    return copies


def photo_files(paths: list[str], folder: Path, seed: int) -> list[str]:
    """Each gallery picture rendered like a phone photo as the page's switch renders it (`task.photo_like`), saved
    under a new name: a class's photos, none of them the gallery's."""
    from PIL import Image

    import app
    from pokedemo.task import Picture, photo_like

    rendered = photo_like([Picture(app._gallery_image(p), Path(p).name) for p in paths], [app._alpha(p) for p in paths],
                          seed)
    copies = [str(folder / f"photo-{seed}-{k}-{Path(p).stem}.png") for k, p in enumerate(paths)]
    for picture, copy in zip(rendered, copies):
        Image.fromarray(picture.image).save(copy)
    return copies


KINDS = {"gallery": "gallery pictures", "own": "the visitor's own pictures (mirrored copies, new files)",
         "photos": "phone photos (gallery supports; the test pictures rendered like photos, as the page's switch does)",
         "photos-plain": "the same phone photos, the student without its photo blend (`photo_blend` off: what the "
                         "blend costs; in the app's process only)"}


def profile_in_process(tasks: int, kind: str, folder: Path) -> tuple[list[dict], int, int]:
    import app
    from pokedemo import report
    from pokedemo.task import Slot, first_answer, photo_like, plan_task, refine

    warm = threading.Thread(target=app.warm_up)  # as `python app.py` does at start-up (its own thread lowers
    warm.start()                                 # its priority), waited for here
    warm.join()
    rows = []
    for seed in range(tasks):
        filled = app.random_task(seed, 5, 5, 5)
        names, galleries = filled[:app.MAX_WAY], filled[app.MAX_WAY:2 * app.MAX_WAY]
        queries = filled[3 * app.MAX_WAY]
        if kind == "own":
            galleries, queries = [own_copies(g, folder) for g in galleries[:5]], own_copies(queries, folder)
        row = {}

        def timed(name, work):
            cpu, wall = time.process_time(), time.perf_counter()
            out = work()
            row[name] = (time.process_time() - cpu, time.perf_counter() - wall)
            return out

        plan = plan_task([Slot(names[k]["value"], [(p, *app._truth(p)) for p in galleries[k]]) for k in range(5)],
                         [(p, *app._truth(p)) for p in queries])
        def read():
            supports, pictures, _ = app._read_task(plan.supports, plan.queries)
            if kind == "photos":   # as `app.answer` does with the switch on
                pictures = photo_like(pictures, [app._alpha(q.path) for q in pictures], seed)
            return supports, pictures

        supports, pictures = timed(PHASES[0], read)
        result = timed(PHASES[1], lambda: first_answer(app.MODELS, plan.class_names, supports, pictures))
        result = timed(PHASES[2], lambda: refine(app.MODELS, result, 5))
        timed(PHASES[3], lambda: app.draw_maps(result, "t-SNE", 10, 0, False))
        timed(PHASES[4], lambda: (report.predictions_grid(result), report.details_html(result)))
        rows.append(row)
    return rows, len(result.support_labels), len(result.query_labels)


def profile_served(tasks: int, kind: str, folder: Path) -> dict:
    """The server's CPU seconds per /classify task (maps on), Gradio included, from the process's CPU times."""
    import psutil
    import httpx

    from pokedemo.config import ASSETS_DIR
    from pokedemo.data.gallery import Gallery
    from scripts.api_client import classify
    from scripts.serve import gallery_task, start_server, wait_until_idle

    gallery = Gallery(ASSETS_DIR / "gallery")
    process, url, _ = start_server()
    http = httpx.Client(base_url=url, timeout=httpx.Timeout(10.0, read=300.0))
    try:
        server = psutil.Process(process.pid)
        wait_until_idle(process)
        cpu, wall = [], []
        for seed in range(tasks + 1):
            paths, labels, queries, _ = gallery_task(gallery, seed, n_query=5)
            if kind == "own":
                paths, queries = own_copies(paths, folder), own_copies(queries, folder)
            elif kind == "photos":
                queries = photo_files(queries, folder, seed)
            before, started = sum(server.cpu_times()[:2]), time.perf_counter()
            classify(url, paths, labels, queries, steps=5, maps=True, http=http)
            if seed:  # the first task warms up
                cpu.append(sum(server.cpu_times()[:2]) - before)
                wall.append(time.perf_counter() - started)
        return {"cpu_s": statistics.median(cpu), "wall_s": statistics.median(wall), "tasks": len(cpu)}
    finally:
        http.close()
        process.terminate()
        process.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("docs/task-profile-now.md"))
    args = parser.parse_args()
    lines, record = [f"# One task, profiled\n\nMade by `python scripts/profile_task.py --tasks {args.tasks}` on this "
                     f"machine: {args.tasks} of the page's random 5-way 5-shot tasks, median per phase, in the app's "
                     "process and code path (torch with 2 threads), after the app's start-up work (`app.warm_up`).\n"], {}
    for kind, text in KINDS.items():
        with tempfile.TemporaryDirectory(prefix="pokedemo-profile-") as folder:  # the own pictures
            if kind == "photos-plain":
                import app

                if app.MODELS.student.photo_blend is None:   # nothing to switch off: the row above is it
                    continue
                blend, app.MODELS.student.photo_blend = app.MODELS.student.photo_blend, None
                rows, n_support, n_query = profile_in_process(args.tasks, "photos", Path(folder))
                app.MODELS.student.photo_blend, served = blend, None
            else:
                rows, n_support, n_query = profile_in_process(args.tasks, kind, Path(folder))
                served = profile_served(args.tasks, kind, Path(folder))
        median = {p: tuple(statistics.median(r[p][k] for r in rows) for k in (0, 1)) for p in PHASES}
        total = tuple(sum(median[p][k] for p in PHASES) for k in (0, 1))
        lines += [f"## Tasks of {text}\n\n{n_support} supports, {n_query} test pictures each.\n",
                  "| phase | CPU s (both cores) | wall s |", "|---|---|---|"]
        lines += [f"| {p} | {median[p][0]:.3f} | {median[p][1]:.3f} |" for p in PHASES]
        lines += [f"| **all phases** | **{total[0]:.3f}** | **{total[1]:.3f}** |", ""]
        lines += [] if served is None else [
                  f"The served app through its API (`/classify` with the maps' points, 5 steps, all pictures in one upload as `scripts/api_client.py` sends them; {served['tasks']} "
                  f"tasks after its start-up work and one task to warm up): **{served['cpu_s']:.2f} CPU s** of the "
                  f"server process per task (Gradio's own work included: uploads, queue, JSON), "
                  f"{served['wall_s']:.2f} s wall as the client sees it.\n"]
        record[kind] = {"phases": median, "served": served}
    args.out.write_text("\n".join(lines), encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps({**record, "tasks": args.tasks}, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
