"""pokedemo: the Gradio page. Layout, event wiring and thin handlers over the `pokedemo` library.

Run: python app.py  (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT are honoured)
"""
from __future__ import annotations

import html
import json
import os
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# numpy/scipy's BLAS on one thread: the server shares 2 cores between visitors, and the page's matrices are
# small (a second thread mostly spins); torch keeps its own setting (POKEDEMO_THREADS)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# Caches in writable places, so the page runs from a read-only folder (a Space's, or a mounted one)
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "pokedemo-numba"))
os.environ.setdefault("GRADIO_TEMP_DIR", os.path.join(tempfile.gettempdir(), "gradio"))

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from PIL import Image  # noqa: E402

from pokedemo import projection, viz  # noqa: E402
from pokedemo import report as report_html  # noqa: E402
from pokedemo.checkpoint import base_mean, checkpoint_identity, load_checkpoint  # noqa: E402
from pokedemo.config import ASSETS_DIR, GALLERY_EMBEDDINGS, REPO_ROOT, SHIPPED_CHECKPOINTS  # noqa: E402
from pokedemo.data.gallery import Gallery  # noqa: E402
from pokedemo.images import LIMITS_TEXT, to_model_image  # noqa: E402
from pokedemo.maps import task_coordinates, task_maps  # noqa: E402
from pokedemo.models import pick_device  # noqa: E402
from pokedemo.priority import background_pool, lower_this_thread, submit_in_context, wait_until_quiet  # noqa: E402
from pokedemo.sessions import SessionRegistry  # noqa: E402
from pokedemo.task import (MAX_FINE_TUNE_SECONDS, MAX_QUERY, MAX_SHOT, MAX_STEPS, MAX_WAY, SHOT_RULE,  # noqa: E402
                           Models, Slot, TaskResult, check_request, classify_picture, embed_known_pictures,
                           export_tuned_student, first_answer, make_photo_banks, photo_like, plan_task, read_pictures,
                           refine, run_task)

GALLERY_DIR = ASSETS_DIR / "gallery"
TRAIN_HINT = ("python -m pokedemo.data prepare && python -m pokedemo.train teacher && "
              "python -m pokedemo.train student --teacher checkpoints/teacher.safetensors")
torch.set_num_threads(int(os.environ.get("POKEDEMO_THREADS", "2")))


def load_models() -> tuple[Models | None, str]:
    device = str(pick_device())  # $POKEDEMO_DEVICE, default auto: a GPU when there is one
    try:
        (teacher, teacher_card), (student, student_card) = [load_checkpoint(path, device=device)
                                                            for path in SHIPPED_CHECKPOINTS]
    except (FileNotFoundError, ValueError) as error:
        return None, f"The models could not be loaded ({error}). Train them with: `{TRAIN_HINT}`"
    for model in (teacher, student):
        model.requires_grad_(False)  # shared and read-only: fine-tuning works on private copies
    return Models(teacher, teacher_card, student, student_card), ""


MODELS, MODELS_PROBLEM = load_models()
GALLERY = Gallery(GALLERY_DIR)
TASK_WORKERS = 2    # CPU-heavy events at a time (the "task" group)
ANSWER_WORKERS = 2  # first answers of Run at a time (the "answer" group, apart from the "task" group)
# fine-tuning and maps of the page's runs, below the first answers' priority (one thread per "task" worker)
BACKGROUND = background_pool(TASK_WORKERS)
BENCHMARKS = REPO_ROOT / "docs" / "benchmarks.json"


def warm_up() -> None:
    """Slow first-use work off the first click, at a lower priority (a class that arrives while a fresh server
    still warms up gets its answers first): both models run once; their embeddings of every gallery picture
    (`Models.cache`: a task's gallery pictures are then looked up, not embedded) are read from the file made
    for these checkpoints, or computed when it is missing or stale; t-SNE runs once; the background banks of
    photo tasks are made. Last, once the visitors' work leaves the server quiet (`wait_until_quiet`), numba
    compiles UMAP: the longest of this work, and it holds Python's lock, which a lower priority does not give
    back, so a class that arrived meanwhile would wait for it."""
    lower_this_thread()
    if MODELS is not None:
        models = {"teacher": MODELS.teacher, "student": MODELS.student}
        loaded = MODELS.cache.load(GALLERY_EMBEDDINGS, checkpoint_identity(*SHIPPED_CHECKPOINTS), models)
        with torch.inference_mode():
            for model in models.values():
                model.embed(torch.rand(8, 3, MODELS.image_size, MODELS.image_size))
        projection.warm_up(("t-SNE",))
        make_photo_banks(MODELS.image_size)
        if not loaded:
            embed_known_pictures(MODELS, [GALLERY.path(item.file) for item in GALLERY.items])
    wait_until_quiet()
    projection.warm_up(("UMAP",))


def _paths(gallery_value) -> list[str]:
    """gr.Gallery values come as [(path, caption)] or [path]."""
    return [item[0] if isinstance(item, (list, tuple)) else item for item in (gallery_value or [])]


def _truth(path: str) -> tuple[str | None, str]:
    item = GALLERY.identify(path)
    return (item.name, item.source) if item else (None, "upload")


def _gallery_image(path: str):
    """A gallery picture's preprocessed image (decoded once for every visitor), None for any other file."""
    item = GALLERY.identify(path)
    return GALLERY.model_image(item.file, MODELS.image_size) if item else None


def _alpha(path: str):
    item = GALLERY.identify(path)
    return GALLERY.alpha(item) if item else None


QUEUE_SIZE = int(os.environ.get("POKEDEMO_QUEUE_SIZE", "40"))
# An upload is deleted when its session ends, unless the same picture was uploaded within the grace period:
# a request waiting in the queue may name it. Gallery pictures (and Gradio's cache copies of them, recognised
# by content) are shared by every visitor and never deleted here (Gradio's delete_cache ages them out). Longest wait: QUEUE_SIZE tasks / 2 workers x ~60 s each.
SESSIONS = SessionRegistry(keep=lambda path: GALLERY.is_own_file(path) or GALLERY.identify(path) is not None,
                           grace_seconds=float(os.environ.get("POKEDEMO_UPLOAD_GRACE_S", QUEUE_SIZE / 2 * 60)))


def register_uploads(files, request: gr.Request) -> None:
    """A visitor uploaded pictures into a slot: they are the session's from now on."""
    SESSIONS.add_files(request.session_hash, _paths(files))


def sweep_uploads_forever(every: float = 60.0) -> None:
    while True:
        time.sleep(every)
        SESSIONS.sweep()


def arm(request: gr.Request) -> None:
    """Run was pressed: a new run may start (a Cancel pressed before this click is forgotten)."""
    SESSIONS.cancel_flag(request.session_hash).clear()


def cancel(request: gr.Request) -> None:
    """Stops this visitor's run: a queued run ends as soon as it starts, a running one at its next step."""
    SESSIONS.cancel_flag(request.session_hash).set()


def end_session(request: gr.Request) -> None:
    """The tab was closed or the connection lost: stop its work, delete its uploads no one else holds."""
    SESSIONS.end(request.session_hash)


def set_ways(n_way: int):
    return [gr.update(visible=k < n_way) for k in range(MAX_WAY)]


def random_task(seed: int, n_way: int, n_shot: int, n_query: int):
    try:
        names, supports, queries, notes = GALLERY.random_task(int(seed), int(n_way), int(n_shot), int(n_query),
                                                              max_queries=MAX_QUERY)
    except ValueError as error:
        raise gr.Error(str(error)) from None
    names_out = [gr.update(value=names[k] if k < n_way else "") for k in range(MAX_WAY)]
    galleries = [[str(GALLERY.path(i.file)) for i in supports[k]] if k < n_way else [] for k in range(MAX_WAY)]
    query_paths = [str(GALLERY.path(i.file)) for i in queries]
    text = (f"**Task {int(seed)} is ready**: {int(n_way)} Pokémon the models have never seen "
            f"({', '.join(names)}), {int(n_shot)} pictures each to learn from, {len(query_paths)} test pictures. "
            "Press **Run**.")
    return (*names_out, *galleries, *[[] for _ in range(MAX_WAY)], query_paths,
            "\n\n".join([text] + [f"Note: {n}" for n in notes]))


def example_task():
    """The ready task of a first visit: seeded, from the gallery."""
    return random_task(0, 5, 5, 5)


def add_species(species: str, current, name: str, n_shot: int):
    """Append n_shot gallery images of a species to a class slot (and name the slot if it has no name)."""
    if not species:
        return gr.update(), gr.update(), gr.update(value=None)
    items = GALLERY.species_images(species, int(n_shot), np.random.default_rng())
    return _paths(current) + [str(GALLERY.path(i.file)) for i in items], (name or species), gr.update(value=None)


def add_query_species(species: str, current, *support_galleries, n: int = 3):
    """Append gallery queries of a species: never a picture the task already holds, other sources first."""
    if not species:
        return gr.update(), gr.update(value=None)
    used = [item for path in _paths(current) + [p for g in support_galleries for p in _paths(g)]
            if (item := GALLERY.identify(path)) is not None]
    items = GALLERY.query_images(species, n, np.random.default_rng(), used)
    return _paths(current) + [str(GALLERY.path(i.file)) for i in items], gr.update(value=None)


def thresholds(use_none: bool) -> dict:
    """Each model's "none of these" threshold (chosen on the val species), or none at all."""
    if not use_none or MODELS is None:
        return {}
    teacher = MODELS.teacher_card.get("none_threshold", {}).get("threshold")
    student = MODELS.student_card.get("none_threshold", {}).get("threshold")
    if teacher is None or student is None:  # a card without its threshold: no "none of these" (none_info says so)
        return {}
    return {"teacher": teacher, "teacher+fine-tune": teacher, "student": student, "student+fine-tune": student}


def none_info() -> str:
    """The thresholds behind "none of these", as the page states them."""
    limits = thresholds(True)
    if not limits.get("teacher") or not limits.get("student"):
        return "no thresholds in the model cards (python -m pokedemo.bench none-threshold --record)"
    return (f"similarity to the nearest star below {limits['teacher']:.2f} (teacher) / {limits['student']:.2f} "
            "(student): chosen on the val species to keep 95% of a 5-way 5-shot task's own sprites (more 'none' "
            "with fewer pictures or photos)")


def draw_maps(result: TaskResult | None, method: str, parameter: float, seed: int, thumbnails: bool):
    """Teacher | student maps of one task (the student's with its fine-tuning slider)."""
    if result is None:
        return None, None
    try:
        projection.check_parameters(method, float(parameter), int(seed))
    except ValueError as error:
        raise gr.Error(str(error)) from None
    return task_maps(result, method, float(parameter), int(seed), bool(thumbnails), base_mean(MODELS.student_card))


def _slots(n_way: int, names, galleries, tests) -> list[Slot]:
    return [Slot(names[k] or "", [(p, *_truth(p)) for p in _paths(galleries[k])],
                 [(p, *_truth(p)) for p in _paths(tests[k])]) for k in range(n_way)]


def answer(n_way, steps, tune_teacher, photo_queries, task_seed, use_none, request: gr.Request,
           progress=gr.Progress(), *values):  # noqa: B026 - Gradio injects request and progress by position
    """Run, first phase (queued apart from the later ones, so a class's first answers come first): check the
    request's limits, read the pictures, and both models' answers. returns: grid, status, the two maps (none
    yet), the result, details, and what the later phases need (when it started, the notes)."""
    names, galleries, tests = values[:MAX_WAY], values[MAX_WAY:2 * MAX_WAY], values[2 * MAX_WAY:3 * MAX_WAY]
    queries, method, parameter, seed, thumbnails = values[3 * MAX_WAY:]
    if MODELS is None:
        raise gr.Error(MODELS_PROBLEM)
    session, n_way, limits = request.session_hash, int(n_way), thresholds(use_none)
    SESSIONS.add_files(session, [p for g in (*galleries, *tests) for p in _paths(g)] + _paths(queries))
    if SESSIONS.cancel_flag(session).is_set():
        return "", "Cancelled before it started.", None, None, None, "", None
    started = time.perf_counter()
    try:
        check_request([_paths(galleries[k]) for k in range(n_way)],
                      _paths(queries) + [p for k in range(n_way) for p in _paths(tests[k])], int(steps))
        projection.check_parameters(method, float(parameter), int(seed))
        if not 0 <= int(task_seed or 0) <= projection.MAX_SEED:
            raise ValueError(f"the task seed must be between 0 and {projection.MAX_SEED}, got {task_seed}")
        plan = plan_task(_slots(n_way, names, galleries, tests), [(p, *_truth(p)) for p in _paths(queries)])
    except ValueError as error:
        raise gr.Error(html.escape(str(error))) from None
    supports, query_pictures, problems = _read_task(plan.supports, plan.queries)
    if photo_queries:  # gallery queries as phone photos (uploads stay as they are)
        query_pictures = photo_like(query_pictures, [_alpha(q.path) for q in query_pictures], int(task_seed or 0))
    notes = [f"Note: {html.escape(n)}" for n in plan.notes] + [f"Skipped: {html.escape(p)}" for p in problems]
    try:
        result = first_answer(MODELS, plan.class_names, supports, query_pictures,
                              lambda f, text: progress(f, desc=text))
    except ValueError as error:
        raise gr.Error(html.escape(" ".join([str(error)] + [f"(Skipped: {p})" for p in problems]))) from None
    coming = "the fine-tuned student and the maps" if int(steps) else "the maps"
    return (report_html.predictions_grid(result, limits),
            "\n\n".join([f"Teacher and student answered in {time.perf_counter() - started:.1f} s; {coming} are "
                          "coming."] + notes), None, None, result, report_html.details_html(result, limits),
            {"started": started, "notes": notes, "steps": int(steps), "tune_teacher": bool(tune_teacher),
             "finished": False})


def finish_run(result: TaskResult | None, run_info: dict | None, use_none, method, parameter, seed, thumbnails,
               request: gr.Request, progress=gr.Progress()):
    """Run, later phases (a generator: Gradio shows each yield, and stops it if the visitor leaves): the
    fine-tuned student's answers, then the maps. They are computed on the background pool, at a lower
    priority than the first answers of visitors still waiting (`pokedemo.priority`). The fine-tuning is the
    one asked for when Run was pressed (`run_info`), and each first answer is refined once: when Run was
    pressed again meanwhile, the session holds the newer answer, and the first of its two refinements to
    start does the work."""
    if result is None or run_info is None or run_info["finished"]:  # cancelled before it started, or done
        return
    run_info["finished"] = True
    steps, tune_teacher = run_info["steps"], run_info["tune_teacher"]
    limits, notes, started = thresholds(use_none), run_info["notes"], run_info["started"]
    cancel_flag = SESSIONS.cancel_flag(request.session_hash)
    report = lambda f, text: progress(f, desc=text)
    if int(steps):
        result = submit_in_context(BACKGROUND, refine, MODELS, result, int(steps), bool(tune_teacher), cancel_flag,
                                   report).result()
        yield (report_html.predictions_grid(result, limits),
               "\n\n".join([f"Fine-tuned in {result.fine_tune_seconds:.1f} s; the maps are coming."] + notes),
               None, None, result, report_html.details_html(result, limits))
    progress(0.9, desc="drawing the maps")
    teacher_map, student_map = submit_in_context(BACKGROUND, draw_maps, result, method, parameter, seed,
                                                 thumbnails).result()
    done = [f"Done in {time.perf_counter() - started:.1f} s (student fine-tuning {result.fine_tune_seconds:.1f} s)."]
    if result.cancelled:
        done.append("**Fine-tuning was cancelled**: the student column shows the model as it was when stopped.")
    if result.timed_out:
        done.append(f"Fine-tuning stopped at its time limit ({MAX_FINE_TUNE_SECONDS:.0f} s), before all its steps.")
    # the grid, the details and the result are on the page already (from the fine-tuned student's yield, or the
    # first answers): left as they are, not sent again
    yield gr.skip(), "\n\n".join(done + notes), teacher_map, student_map, gr.skip(), gr.skip()


def rescore(result: TaskResult | None, use_none: bool):
    """The "none of these" switch changed: the same answers, re-read with or without the thresholds."""
    if result is None:
        return gr.update(), gr.update()
    limits = thresholds(use_none)
    return report_html.predictions_grid(result, limits), report_html.details_html(result, limits)


def download_results(result: TaskResult | None, use_none: bool):
    """The answers as CSV, in a fresh folder of Gradio's temp dir (its delete_cache ages it out)."""
    if result is None:
        raise gr.Error("Run a task first: there are no answers to download yet.")
    path = Path(tempfile.mkdtemp(dir=os.environ["GRADIO_TEMP_DIR"])) / "pokedemo-answers.csv"
    path.write_text(report_html.results_csv(result, thresholds(use_none)), encoding="utf-8")
    return [str(path)]


def download_model(result: TaskResult | None):
    """The visitor's fine-tuned student: .safetensors + card (class names and prototypes inside)."""
    if result is None:
        raise gr.Error("Run a task first: there is no fine-tuned student yet.")
    try:
        return [str(p) for p in export_tuned_student(MODELS, result, Path(tempfile.mkdtemp(
            dir=os.environ["GRADIO_TEMP_DIR"])))]
    except ValueError as error:
        raise gr.Error(str(error)) from None


def classify_webcam(frame, result: TaskResult | None, use_none: bool) -> str:
    """One webcam frame against the visitor's task, with their fine-tuned student."""
    if frame is None:
        return ""
    if result is None:
        return "Run a task first: the webcam answers with the student you fine-tuned on your task."
    key, probabilities, similarity = classify_picture(MODELS, result, to_model_image(Image.fromarray(frame),
                                                                                       MODELS.image_size))
    return report_html.single_answer(result.class_names, probabilities, similarity, thresholds(use_none).get(key))


def _read_task(support_groups: list[list[tuple]], query_items: list[tuple]):
    """(pictures per class, query pictures, files skipped with the reason) from (path, species, source) items."""
    supports, problems = [], []
    for items in support_groups:
        pictures, bad = read_pictures(items, MODELS.image_size, _gallery_image)
        supports.append([replace(p, alpha=_alpha(p.path)) for p in pictures])  # a gallery sprite's mask
        problems += bad
    queries, bad = read_pictures(query_items, MODELS.image_size, _gallery_image)
    return supports, [replace(q, alpha=_alpha(q.path)) for q in queries], problems + bad


def classify_api(support_files, support_labels: str, query_files, steps: float = 5, maps: bool = False):
    """API: support images with one class name each (comma-separated, in order) and query images ->
    predictions of teacher, student and fine-tuned student (and, with maps, both t-SNE maps' points with what
    each is: the supports used, grouped by class, then the readable queries, then one prototype per class)."""
    if MODELS is None:
        raise gr.Error(MODELS_PROBLEM)
    labels = [s.strip() for s in (support_labels or "").split(",")]
    paths = [getattr(f, "name", f) for f in (support_files or [])]
    query_paths = [getattr(f, "name", f) for f in (query_files or [])]
    call = f"api:{uuid.uuid4()}"  # an API call is its own session, ended once its pictures are read
    SESSIONS.add_files(call, paths + query_paths)
    try:
        if len(labels) != len(paths):
            raise gr.Error(f"{len(paths)} support images but {len(labels)} class names: give one name per image")
        classes = list(dict.fromkeys(labels))
        try:
            check_request([[p for p, l in zip(paths, labels) if l == name] for name in classes], query_paths,
                          int(steps))
        except ValueError as error:
            raise gr.Error(str(error)) from None
        supports, queries, problems = _read_task([[(p, None, "upload") for p, l in zip(paths, labels) if l == name]
                                                  for name in classes], [(p, None, "upload") for p in query_paths])
    finally:
        SESSIONS.end(call)
    problems += [f"class '{name}' has {len(pictures)} pictures: the first {MAX_SHOT} were used"
                 for name, pictures in zip(classes, supports) if len(pictures) > MAX_SHOT]
    try:
        result = run_task(MODELS, classes, supports, queries, int(steps), snapshot_every=0)
    except ValueError as error:
        raise gr.Error(html.escape(" ".join([str(error)] + problems))) from None
    drawn = {}
    if maps:  # what each point is, then both maps' [x, y] in that order
        points = task_coordinates(result, "t-SNE", 10, 0, base_mean(MODELS.student_card))
        n = result.n_support
        drawn = {"points": [{"role": "support", "name": p.name, "class": result.class_names[k]}
                            for p, k in zip(result.pictures[:n], result.support_labels)]
                 + [{"role": "query", "name": p.name} for p in result.pictures[n:]]
                 + [{"role": "prototype", "class": name} for name in result.class_names],
                 "teacher": np.round(points.teacher_xy, 4).tolist(), "student": np.round(points.frames[-1][1], 4).tolist()}
    return {"classes": result.class_names, "skipped": problems, "maps": drawn,
            "predictions": [{"query": q.name, **{k: {"label": result.class_names[int(p[i].argmax())],
                                                     "confidence": round(float(p[i].max()), 4)}
                                                 for k, p in result.probabilities.items()}}
                            for i, q in enumerate(queries)]}


def val_maps():
    """The precomputed maps of the 50 val species (python -m pokedemo.bench valmap)."""
    path = ASSETS_DIR / "val_map.json"
    if not path.exists():
        return None, None
    data = json.loads(path.read_text())
    names = sorted(set(data["species"]))
    labels = np.asarray([names.index(s) for s in data["species"]])
    hover = [f"{s} ({k})" for s, k in zip(data["species"], data["source"])]
    role = np.asarray(["query"] * len(labels))
    return tuple(viz.embedding_figure(np.asarray(data[m]), labels, role, names, hover, title=f"{m}: 50 val species")
                 for m in ("teacher", "student"))


def compression_figures():
    if not BENCHMARKS.exists():
        return None, None, None, None
    data = json.loads(BENCHMARKS.read_text())
    rows = [r for r in data["fewshot"]]
    models = data["models"]
    stored = [m for m in models if m.get("parameters") and not m["model"].endswith("-fast")]  # -fast: same weights
    names, parameters = [m["model"] for m in stored], [m["parameters"] for m in stored]
    latency = {m["model"]: m["latency_ms_batch1"] for m in models if m.get("latency_ms_batch1")}
    pruning = data.get("pruning", [])
    return (viz.accuracy_figure(rows), viz.bar_figure(names, parameters, "parameters (log scale)", log=True),
            viz.bar_figure(list(latency), list(latency.values()), "latency per image, batch 1 (ms)", " ms"),
            viz.curve_figure([p["sparsity"] for p in pruning], {"5-shot": [100 * p["accuracy"] for p in pruning]},
                             "magnitude pruning of the student", "sparsity", "5-shot accuracy (%)")
            if pruning else None)


def measure_here():
    """Live: embedding latency of both models on this host, batch 1 and batch 64, as they embed a sprite (random
    pictures would be taken for photos, which the student also cuts out: `Embedder.embed`)."""
    if MODELS is None:
        raise gr.Error(MODELS_PROBLEM)
    lines = ["| model | batch 1 (ms/image) | batch 64 (images/s) |", "|---|---|---|"]
    for name, model in (("teacher", MODELS.teacher), ("student", MODELS.student)):
        one, many = torch.rand(1, 3, 64, 64), torch.rand(64, 3, 64, 64)
        with torch.inference_mode():
            model.embed(many, blend_photos=False)
            started = time.perf_counter()
            for _ in range(10):
                model.embed(one, blend_photos=False)
            latency = (time.perf_counter() - started) / 10 * 1000
            started = time.perf_counter()
            model.embed(many, blend_photos=False)
            throughput = 64 / (time.perf_counter() - started)
        lines.append(f"| {name} | {latency:.1f} | {throughput:.0f} |")
    return "\n".join(lines)


NONE_INFO = none_info()
CSS = (ASSETS_DIR / "page.css").read_text(encoding="utf-8")
HEAD = f"<script>{(ASSETS_DIR / 'page.js').read_text(encoding='utf-8')}</script>"
LAUNCH = dict(allowed_paths=[str(GALLERY_DIR), str(ASSETS_DIR / "how")], css=CSS, head=HEAD, max_file_size="10mb", show_error=True)
HOW_IT_WORKS = REPO_ROOT / "docs" / "how-it-works.md"
TECHNICAL = REPO_ROOT / "docs" / "how-it-works-technical.md"

with gr.Blocks(title="pokedemo: few-shot learning and model compression", delete_cache=(3600, 3600)) as demo:
    gr.Markdown("## pokedemo: can a model 100x smaller learn new Pokémon from 5 pictures?\n"
                "A big **teacher** (11 million numbers) and a tiny **student** (100 thousand) meet Pokémon they "
                "have never seen. Press **Run**, then compare their maps and answers.", elem_id="intro")
    if MODELS_PROBLEM:
        gr.Markdown(f"**Problem:** {MODELS_PROBLEM}")
    result_state = gr.State(None)
    run_info = gr.State(None)         # what the later phases of a run need from its first (start, notes)
    with gr.Tab("Few-shot task"):
        with gr.Row(equal_height=True, elem_id="controls"):
            run_button = gr.Button("Run", variant="primary", elem_id="run", min_width=90, scale=0)
            cancel_button = gr.Button("Cancel", elem_id="cancel", min_width=90, scale=0)
            random_button = gr.Button("New random task", elem_id="random-task", min_width=150, scale=0)
            seed = gr.Number(value=0, precision=0, label="task number", min_width=100, scale=0, elem_id="task-seed")
            steps = gr.Slider(0, MAX_STEPS, value=5, step=5, label="student fine-tuning steps", elem_id="steps",
                              min_width=200)
            with gr.Column(min_width=220, scale=1):
                photo_queries = gr.Checkbox(label="test pictures as phone photos", elem_id="photo-queries")
                use_none = gr.Checkbox(label='answer "none of these" when far from every class', elem_id="use-none",
                                       info=NONE_INFO)
        status = gr.Markdown("Loading the example task...", elem_id="status")
        with gr.Row(elem_id="results"):
            with gr.Column(scale=3, min_width=340):
                with gr.Row():
                    teacher_plot = gr.Plot(label="teacher", show_label=False, elem_id="teacher-plot", min_width=300)
                    student_plot = gr.Plot(label="student", show_label=False, elem_id="student-plot", min_width=300)
                gr.HTML(report_html.LEGEND_HTML, elem_id="legend")
            with gr.Column(scale=2, min_width=300):
                predictions = gr.HTML("<p class='accuracy'>The answers appear here after Run.</p>",
                                      elem_id="predictions")
        with gr.Accordion("Details: every answer with its top 3, per-class accuracy, confusion matrices, downloads",
                          open=False, elem_id="details-box"):
            details = gr.HTML(elem_id="details")
            with gr.Row():
                csv_button = gr.Button("Download the answers (CSV)", elem_id="download-csv")
                model_button = gr.Button("Download your fine-tuned student (.safetensors + card, ONNX)",
                                         elem_id="download-model")
            downloads = gr.File(label="downloads", file_count="multiple", interactive=False, elem_id="downloads")
        with gr.Accordion("Your task: classes and pictures", open=True, elem_id="task-box"):
            with gr.Row():
                n_way = gr.Slider(2, MAX_WAY, value=5, step=1, label="class slots", min_width=160)
                n_shot = gr.Slider(1, MAX_SHOT, value=5, step=1, label="pictures to add per class (gallery, random)",
                                   min_width=160)
                n_query = gr.Slider(1, 10, value=5, step=1, label="random task: test pictures per class",
                                    min_width=160)
            gr.Markdown(f"{SHOT_RULE} Uploads: {LIMITS_TEXT}.", elem_id="shot-rule")
            slot_columns, slot_names, slot_galleries, slot_pickers, slot_tests = [], [], [], [], []
            with gr.Row():
                for k in range(MAX_WAY):
                    with gr.Column(visible=k < 5, min_width=170) as column:
                        slot_names.append(gr.Textbox(label=f"class {k + 1} name", elem_id=f"class-name-{k}"))
                        slot_galleries.append(gr.Gallery(label=f"class {k + 1}: pictures to learn from",
                                                         type="filepath", interactive=True, columns=3, height=150,
                                                         sources=["upload", "webcam", "clipboard"],
                                                         elem_id=f"support-{k}"))
                        slot_pickers.append(gr.Dropdown(GALLERY.species_names, label="add from the gallery",
                                                        value=None, elem_id=f"picker-{k}"))
                        slot_tests.append(gr.Gallery(label=f"class {k + 1}: your test pictures (optional)",
                                                     type="filepath", interactive=True, columns=3, height=110,
                                                     sources=["upload", "webcam", "clipboard"],
                                                     elem_id=f"test-{k}"))
                    slot_columns.append(column)
            with gr.Row():
                queries = gr.Gallery(label="test pictures (any class; gallery ones know their class)",
                                     type="filepath", interactive=True, columns=10, height=150,
                                     sources=["upload", "webcam", "clipboard"], elem_id="queries")
                with gr.Column(scale=0, min_width=200):
                    query_picker = gr.Dropdown(GALLERY.species_names, label="add test pictures from the gallery",
                                               value=None)
                    tune_teacher = gr.Checkbox(label="fine-tune the teacher too (slower)")
        with gr.Accordion("Map settings", open=False):
            with gr.Row():
                method = gr.Radio(list(projection.METHODS), value="t-SNE", label="map", elem_id="method")
                parameter = gr.Slider(2, 30, value=10, step=1, label="perplexity (t-SNE) / neighbours (UMAP)")
                map_seed = gr.Number(value=0, precision=0, label="map seed")
                thumbnails = gr.Checkbox(label="draw the pictures on the maps (no slider)")
        with gr.Accordion("Webcam: your fine-tuned student, live", open=False, elem_id="webcam-box"):
            gr.Markdown("After a Run, point a camera at a Pokémon (a card, a toy, a screen). Best with the "
                        "photo-trained models; a webcam picture is harder than a sprite.")
            with gr.Row():
                webcam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="webcam",
                                  elem_id="webcam", height=240)
                webcam_answer = gr.HTML(elem_id="webcam-answer")
    with gr.Tab("Val species map"):
        gr.Markdown("t-SNE of 50 species used only for model selection (never trained on), 8 pictures each: "
                    "how well each model separates species it did not learn. Made by `python -m pokedemo.bench valmap`.")
        with gr.Row():
            val_teacher_plot, val_student_plot = gr.Plot(), gr.Plot()
    with gr.Tab("Compression"):
        gr.Markdown("Measured by `python -m pokedemo.bench all` (see docs/benchmarks.md); the button measures "
                    "this host live.")
        with gr.Row():
            accuracy_plot, parameters_plot = gr.Plot(), gr.Plot()
        with gr.Row():
            latency_plot, pruning_plot = gr.Plot(), gr.Plot()
        measure_button = gr.Button("Measure speed on this host")
        measured = gr.Markdown()
    with gr.Tab("How it works", elem_id="how-tab"):
        with gr.Column(elem_id="how"):
            for kind, value in report_html.markdown_sections(HOW_IT_WORKS.read_text(encoding="utf-8"),
                                                             HOW_IT_WORKS.parent):
                if kind == "image":
                    gr.Image(value, show_label=False, interactive=False, container=False, elem_classes="how-picture")
                else:
                    gr.Markdown(value)
        with gr.Accordion("The technical version", open=False):
            gr.Markdown(TECHNICAL.read_text(encoding="utf-8"))
    with gr.Row(visible=False):  # the API: support images + their class names + queries -> JSON
        api_support = gr.File(file_count="multiple")
        api_labels = gr.Textbox()
        api_queries = gr.File(file_count="multiple")
        api_steps = gr.Number(value=5)
        api_maps = gr.Checkbox(value=False)
        api_out = gr.JSON()
        api_button = gr.Button()

    task_outputs = [*slot_names, *slot_galleries, *slot_tests, queries, status]
    n_way.change(set_ways, n_way, slot_columns, api_visibility="private")
    random_button.click(random_task, [seed, n_way, n_shot, n_query], task_outputs, api_visibility="private")
    for component in (*slot_galleries, *slot_tests, queries):
        component.upload(register_uploads, component, None, queue=False, api_visibility="private")
    for k in range(MAX_WAY):
        slot_pickers[k].change(add_species, [slot_pickers[k], slot_galleries[k], slot_names[k], n_shot],
                               [slot_galleries[k], slot_names[k], slot_pickers[k]], api_visibility="private")
    query_picker.change(add_query_species, [query_picker, queries, *slot_galleries], [queries, query_picker],
                        api_visibility="private")
    # CPU-heavy handlers share one limit ("task"): runs' later phases, map redraws, API calls, speed measurements
    heavy = {"concurrency_limit": TASK_WORKERS, "concurrency_id": "task", "api_visibility": "private"}
    # Run: the first answers in their own queue (a class's first answers before anyone's fine-tuning), then
    # the rest (only after a first answer: a refused request stops there)
    run_button.click(arm, None, None, queue=False, api_visibility="private").then(
        answer, [n_way, steps, tune_teacher, photo_queries, seed, use_none, *slot_names, *slot_galleries, *slot_tests,
                 queries, method, parameter, map_seed, thumbnails],
        [predictions, status, teacher_plot, student_plot, result_state, details, run_info],
        show_progress_on=[status], concurrency_limit=ANSWER_WORKERS, concurrency_id="answer",
        api_visibility="private").success(
        finish_run, [result_state, run_info, use_none, method, parameter, map_seed, thumbnails],
        [predictions, status, teacher_plot, student_plot, result_state, details], show_progress_on=[status], **heavy)
    cancel_button.click(cancel, None, None, queue=False, api_visibility="private")
    use_none.change(rescore, [result_state, use_none], [predictions, details], api_visibility="private")
    redraw_inputs = [result_state, method, parameter, map_seed, thumbnails]
    for control in (method, parameter, map_seed, thumbnails):
        control.change(draw_maps, redraw_inputs, [teacher_plot, student_plot], show_progress_on=[status], **heavy)
    csv_button.click(download_results, [result_state, use_none], downloads, api_visibility="private")
    model_button.click(download_model, result_state, downloads, **heavy)  # the ONNX export takes a few seconds
    webcam.stream(classify_webcam, [webcam, result_state, use_none], webcam_answer, stream_every=0.5,
                  time_limit=120, concurrency_limit=2, concurrency_id="webcam", api_visibility="private",
                  show_progress="hidden")
    api_button.click(classify_api, [api_support, api_labels, api_queries, api_steps, api_maps], api_out,
                     api_name="classify", concurrency_limit=TASK_WORKERS, concurrency_id="task")
    measure_button.click(measure_here, None, measured, **heavy)
    demo.unload(end_session)
    demo.load(example_task, None, task_outputs, api_visibility="private")
    demo.load(val_maps, None, [val_teacher_plot, val_student_plot], api_visibility="private")
    demo.load(compression_figures, None, [accuracy_plot, parameters_plot, latency_plot, pruning_plot],
              api_visibility="private")

demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=2)
threading.Thread(target=sweep_uploads_forever, daemon=True).start()

if __name__ == "__main__":
    threading.Thread(target=warm_up, daemon=True).start()
    demo.launch(**LAUNCH)
