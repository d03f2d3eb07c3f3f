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

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Caches in writable places, so the page runs from a read-only folder (a Space's, or a mounted one)
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "pokedemo-numba"))
os.environ.setdefault("GRADIO_TEMP_DIR", os.path.join(tempfile.gettempdir(), "gradio"))

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from pokedemo import projection, viz  # noqa: E402
from pokedemo.checkpoint import load_checkpoint  # noqa: E402
from pokedemo.config import ASSETS_DIR, CHECKPOINT_DIR, REPO_ROOT  # noqa: E402
from pokedemo.data.gallery import Gallery  # noqa: E402
from pokedemo.images import LIMITS_TEXT  # noqa: E402
from pokedemo.sessions import SessionRegistry  # noqa: E402
from pokedemo.task import (MAX_FINE_TUNE_SECONDS, MAX_QUERY, MAX_SHOT, MAX_WAY, Models, TaskResult, check_request,  # noqa: E402
                           first_answer, map_points, photo_like, read_pictures, refine, run_task)

GALLERY_DIR = ASSETS_DIR / "gallery"
TRAIN_HINT = ("python -m pokedemo.data prepare && python -m pokedemo.train teacher && "
              "python -m pokedemo.train student --teacher checkpoints/teacher.safetensors")
torch.set_num_threads(int(os.environ.get("POKEDEMO_THREADS", "2")))


def load_models() -> tuple[Models | None, str]:
    try:
        teacher, teacher_card = load_checkpoint(CHECKPOINT_DIR / "teacher.safetensors")
        student, student_card = load_checkpoint(CHECKPOINT_DIR / "student.safetensors")
    except (FileNotFoundError, ValueError) as error:
        return None, f"The models could not be loaded ({error}). Train them with: `{TRAIN_HINT}`"
    for model in (teacher, student):
        model.requires_grad_(False)  # shared and read-only: fine-tuning works on private copies
    return Models(teacher, teacher_card, student, student_card), ""


MODELS, MODELS_PROBLEM = load_models()
GALLERY = Gallery(GALLERY_DIR)
BENCHMARKS = REPO_ROOT / "docs" / "benchmarks.json"


def warm_up() -> None:
    """Slow first-use work off the first click: numba compiles UMAP, the models run once."""
    projection.warm_up()
    if MODELS is not None:
        with torch.inference_mode():
            MODELS.teacher.embed(torch.rand(8, 3, MODELS.image_size, MODELS.image_size))
            MODELS.student.embed(torch.rand(8, 3, MODELS.image_size, MODELS.image_size))


def _paths(gallery_value) -> list[str]:
    """gr.Gallery values come as [(path, caption)] or [path]."""
    return [item[0] if isinstance(item, (list, tuple)) else item for item in (gallery_value or [])]


def _truth(path: str) -> tuple[str | None, str]:
    item = GALLERY.identify(path)
    return (item.name, item.source) if item else (None, "upload")


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
    text = f"Random task with seed **{int(seed)}**: share it with the class."
    return (*names_out, *galleries, query_paths, "\n\n".join([text] + [f"Note: {n}" for n in notes]))


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


def draw_maps(result: TaskResult | None, method: str, parameter: float, seed: int, thumbnails: bool,
              step: int = -1):
    """Teacher | student maps of one task; `step` picks a snapshot of the student during fine-tuning."""
    if result is None:
        return None, None
    try:
        projection.check_parameters(method, float(parameter), int(seed))
    except ValueError as error:
        raise gr.Error(str(error)) from None
    figures = []
    for key in ("teacher", "student+fine-tune" if "student+fine-tune" in result.embeddings else "student"):
        embeddings = None
        if key != "teacher" and result.snapshots:
            embeddings = result.snapshots[min(int(step), len(result.snapshots) - 1)] if step >= 0 else None
        points = map_points(result, key, embeddings)
        coords = projection.project(points["embeddings"], method, parameter, int(seed))
        title = key if embeddings is None else f"student, fine-tuning snapshot {int(step)}"
        figures.append(viz.embedding_figure(coords, points["labels"], points["role"], result.class_names,
                                            points["hover"], points["mistakes"], title,
                                            points["thumbnails"] if thumbnails else None))
    return figures[0], figures[1]


def results_html(result: TaskResult) -> str:
    models = [k for k in ("teacher", "student", "student+fine-tune", "teacher+fine-tune") if k in result.probabilities]
    n_support = len(result.support_labels)
    rows = []
    for i, picture in enumerate(result.pictures[n_support:]):
        name, truth = html.escape(picture.name), html.escape(picture.truth or "?")
        cells = [f"<td><img src='{viz.png_data_uri(picture.image, 56)}' alt='{name}'/><br>"
                 f"<small>{name} ({html.escape(picture.source)})</small></td><td>{truth}</td>"]
        for key in models:
            probabilities = result.probabilities[key][i]
            k = int(probabilities.argmax())
            wrong = picture.truth is not None and picture.truth in result.class_names and \
                result.class_names[k] != picture.truth
            cells.append(f"<td class='{'mistake' if wrong else 'ok'}'>{'❌ ' if wrong else ''}"
                         f"{html.escape(result.class_names[k])}"
                         f"<div class='bar'><span style='width:{100 * probabilities[k]:.0f}%'></span></div>"
                         f"{probabilities[k]:.0%}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{k}</th>" for k in models)
    accuracy = "".join(f"<th>{'' if result.accuracy(k) is None else f'{result.accuracy(k):.0%}'}</th>" for k in models)
    return (f"<table class='predictions'><tr><th>query</th><th>true</th>{head}</tr>{''.join(rows)}"
            f"<tr><th colspan=2>accuracy</th>{accuracy}</tr></table>")


def run(n_way, n_shot, steps, tune_teacher, photo_queries, task_seed, request: gr.Request,
        progress=gr.Progress(), *values):  # noqa: B026 - Gradio injects request and progress by position
    """Queued, in phases (a generator: Gradio shows each yield, and stops it if the visitor leaves): check the
    request's limits and read the pictures; both models' answers; the fine-tuned student's; the maps."""
    names, galleries = values[:MAX_WAY], values[MAX_WAY:2 * MAX_WAY]
    queries, method, parameter, seed, thumbnails = values[2 * MAX_WAY:]
    if MODELS is None:
        raise gr.Error(MODELS_PROBLEM)
    session, n_way, n_shot = request.session_hash, int(n_way), int(n_shot)
    SESSIONS.add_files(session, [p for g in galleries for p in _paths(g)] + _paths(queries))
    cancel_flag = SESSIONS.cancel_flag(session)
    if cancel_flag.is_set():
        yield "", "Cancelled before it started.", None, None, None, gr.update()
        return
    started = time.perf_counter()
    try:
        check_request([_paths(galleries[k]) for k in range(n_way)], _paths(queries), int(steps))
        projection.check_parameters(method, float(parameter), int(seed))
        if not 0 <= int(task_seed or 0) <= projection.MAX_SEED:
            raise ValueError(f"the task seed must be between 0 and {projection.MAX_SEED}, got {task_seed}")
    except ValueError as error:
        raise gr.Error(str(error)) from None
    supports, query_pictures, problems = _read_task([[(p, *_truth(p)) for p in _paths(galleries[k])]
                                                     for k in range(n_way)],
                                                    [(p, *_truth(p)) for p in _paths(queries)])
    if photo_queries:  # gallery queries as phone photos (uploads stay as they are)
        query_pictures = photo_like(query_pictures, [_alpha(q.path) for q in query_pictures], int(task_seed or 0))
    report = lambda f, text: progress(f, desc=text)
    skipped = [f"⚠️ Skipped: {html.escape(p)}" for p in problems]
    try:
        result = first_answer(MODELS, list(names[:n_way]), supports, query_pictures, n_shot, report)
    except ValueError as error:
        raise gr.Error(html.escape(" ".join([str(error)] + [f"(Skipped: {p})" for p in problems]))) from None
    coming = "the fine-tuned student and the maps" if int(steps) else "the maps"
    yield (results_html(result), "\n\n".join([f"Teacher and student answered in {time.perf_counter() - started:.1f} "
                                               f"s; {coming} are coming."] + skipped),
           None, None, result, gr.update())
    if int(steps):
        result = refine(MODELS, result, int(steps), bool(tune_teacher), cancel_flag, report)
        yield (results_html(result), "\n\n".join([f"Fine-tuned in {result.fine_tune_seconds:.1f} s; the maps are "
                                                   "coming."] + skipped), None, None, result, gr.update())
    teacher_map, student_map = draw_maps(result, method, parameter, seed, thumbnails)
    notes = [f"Done in {time.perf_counter() - started:.1f} s (student fine-tuning {result.fine_tune_seconds:.1f} s)."]
    if result.cancelled:
        notes.append("**Fine-tuning was cancelled**: the student column shows the model as it was when stopped.")
    if result.timed_out:
        notes.append(f"Fine-tuning stopped at its time limit ({MAX_FINE_TUNE_SECONDS:.0f} s), before all its steps.")
    snapshots = max(0, len(result.snapshots) - 1)
    yield (results_html(result), "\n\n".join(notes + skipped), teacher_map, student_map, result,
           gr.update(maximum=max(1, snapshots), value=snapshots, interactive=snapshots > 0))


def _read_task(support_groups: list[list[tuple]], query_items: list[tuple]):
    """(pictures per class, query pictures, files skipped with the reason) from (path, species, source) items."""
    supports, problems = [], []
    for items in support_groups:
        pictures, bad = read_pictures(items, MODELS.image_size)
        supports.append(pictures)
        problems += bad
    queries, bad = read_pictures(query_items, MODELS.image_size)
    return supports, queries, problems + bad


def classify_api(support_files, support_labels: str, query_files, steps: float = 5, maps: bool = False):
    """API: support images with one class name each (comma-separated, in order) and query images ->
    predictions of teacher, student and fine-tuned student (and, with maps, both t-SNE maps' points)."""
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
    n_shot = min([MAX_SHOT] + [len(s) for s in supports])
    try:
        result = run_task(MODELS, classes, supports, queries, max(1, n_shot), int(steps), snapshot_every=0)
    except ValueError as error:
        raise gr.Error(html.escape(" ".join([str(error)] + problems))) from None
    drawn = {}
    if maps:
        for key, figure in zip(("teacher", "student"), draw_maps(result, "t-SNE", 10, 0, False)):
            drawn[key] = [[float(x), float(y)] for trace in figure.data for x, y in zip(trace.x, trace.y)]
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
    """Live: embedding latency of both models on this host, batch 1 and batch 64."""
    if MODELS is None:
        raise gr.Error(MODELS_PROBLEM)
    lines = ["| model | batch 1 (ms/image) | batch 64 (images/s) |", "|---|---|---|"]
    for name, model in (("teacher", MODELS.teacher), ("student", MODELS.student)):
        one, many = torch.rand(1, 3, 64, 64), torch.rand(64, 3, 64, 64)
        with torch.inference_mode():
            model.embed(many)
            started = time.perf_counter()
            for _ in range(10):
                model.embed(one)
            latency = (time.perf_counter() - started) / 10 * 1000
            started = time.perf_counter()
            model.embed(many)
            throughput = 64 / (time.perf_counter() - started)
        lines.append(f"| {name} | {latency:.1f} | {throughput:.0f} |")
    return "\n".join(lines)


CSS = """
.predictions td, .predictions th {padding: 4px 8px; text-align: center}
.predictions .mistake {background: #fde2e2}
.bar {background: #eee; width: 90px; height: 6px; margin: 2px auto}
.bar span {display: block; height: 6px; background: #3b82f6}
"""

with gr.Blocks(title="pokedemo: few-shot learning and model compression", delete_cache=(3600, 3600)) as demo:
    gr.Markdown("# pokedemo: a 100x smaller student learns new Pokémon from a few pictures\n"
                "Build a task of Pokémon the models have **never seen** (Gen I), then compare the big teacher "
                "(ResNet18, 11M parameters) with the tiny student (<100k parameters) before and after the "
                f"student is fine-tuned on your pictures. Uploads: {LIMITS_TEXT}.")
    if MODELS_PROBLEM:
        gr.Markdown(f"⚠️ {MODELS_PROBLEM}")
    result_state = gr.State(None)
    with gr.Tab("Few-shot task"):
        with gr.Row():
            n_way = gr.Slider(2, MAX_WAY, value=5, step=1, label="classes (ways)")
            n_shot = gr.Slider(1, 10, value=5, step=1, label="support images per class (shots)")
            n_query = gr.Slider(1, 10, value=5, step=1, label="random task: queries per class")
            seed = gr.Number(value=0, precision=0, label="random task seed")
            random_button = gr.Button("🎲 Random task", elem_id="random-task")
        slot_columns, slot_names, slot_galleries, slot_pickers = [], [], [], []
        with gr.Row():
            for k in range(MAX_WAY):
                with gr.Column(visible=k < 5, min_width=160) as column:
                    slot_names.append(gr.Textbox(label=f"class {k + 1} name", elem_id=f"class-name-{k}"))
                    slot_galleries.append(gr.Gallery(label=f"class {k + 1} support images", type="filepath",
                                                     interactive=True, columns=3, height=180,
                                                     sources=["upload", "webcam", "clipboard"],
                                                     elem_id=f"support-{k}"))
                    slot_pickers.append(gr.Dropdown(GALLERY.species_names, label="add from gallery", value=None))
                slot_columns.append(column)
        with gr.Row():
            queries = gr.Gallery(label="query images (to classify)", type="filepath", interactive=True, columns=10,
                                 height=180, sources=["upload", "webcam", "clipboard"], elem_id="queries")
            with gr.Column(scale=0, min_width=200):
                query_picker = gr.Dropdown(GALLERY.species_names, label="add queries from gallery", value=None)
                steps = gr.Slider(0, 100, value=5, step=5, label="student fine-tuning steps", elem_id="steps")
                tune_teacher = gr.Checkbox(label="fine-tune the teacher too (slower)")
                photo_queries = gr.Checkbox(label="photo-like queries: show gallery queries as phone photos",
                                            elem_id="photo-queries")
        with gr.Row():
            run_button = gr.Button("▶ Run", variant="primary", elem_id="run")
            cancel_button = gr.Button("✋ Cancel", elem_id="cancel")
        status = gr.Markdown(elem_id="status")
        predictions = gr.HTML(elem_id="predictions")
        with gr.Row():
            method = gr.Radio(list(projection.METHODS), value="t-SNE", label="map", elem_id="method")
            parameter = gr.Slider(2, 30, value=10, step=1, label="perplexity (t-SNE) / neighbours (UMAP)")
            map_seed = gr.Number(value=0, precision=0, label="map seed")
            thumbnails = gr.Checkbox(label="draw the pictures")
            snapshot = gr.Slider(0, 1, value=1, step=1, label="student: before → after fine-tuning",
                                 interactive=False)
        with gr.Row():
            teacher_plot = gr.Plot(label="teacher", elem_id="teacher-plot")
            student_plot = gr.Plot(label="student", elem_id="student-plot")
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
    with gr.Tab("How it works"):
        gr.Markdown((REPO_ROOT / "docs" / "how-it-works.md").read_text(encoding="utf-8")
                    if (REPO_ROOT / "docs" / "how-it-works.md").exists() else "")
    with gr.Row(visible=False):  # the API: support images + their class names + queries -> JSON
        api_support = gr.File(file_count="multiple")
        api_labels = gr.Textbox()
        api_queries = gr.File(file_count="multiple")
        api_steps = gr.Number(value=5)
        api_maps = gr.Checkbox(value=False)
        api_out = gr.JSON()
        api_button = gr.Button()

    n_way.change(set_ways, n_way, slot_columns, api_visibility="private")
    random_button.click(random_task, [seed, n_way, n_shot, n_query], [*slot_names, *slot_galleries, queries, status],
                        api_visibility="private")
    for component in (*slot_galleries, queries):
        component.upload(register_uploads, component, None, queue=False, api_visibility="private")
    for k in range(MAX_WAY):
        slot_pickers[k].change(add_species, [slot_pickers[k], slot_galleries[k], slot_names[k], n_shot],
                               [slot_galleries[k], slot_names[k], slot_pickers[k]], api_visibility="private")
    query_picker.change(add_query_species, [query_picker, queries, *slot_galleries], [queries, query_picker],
                        api_visibility="private")
    # every CPU-heavy handler shares one limit ("task"): runs, map redraws, API calls, speed measurements
    heavy = {"concurrency_limit": 2, "concurrency_id": "task", "api_visibility": "private"}
    run_button.click(arm, None, None, queue=False, api_visibility="private").then(
        run, [n_way, n_shot, steps, tune_teacher, photo_queries, seed, *slot_names, *slot_galleries, queries, method,
              parameter, map_seed, thumbnails],
        [predictions, status, teacher_plot, student_plot, result_state, snapshot], **heavy)
    cancel_button.click(cancel, None, None, queue=False, api_visibility="private")
    redraw_inputs = [result_state, method, parameter, map_seed, thumbnails, snapshot]
    for control in (method, parameter, map_seed, thumbnails):
        control.change(draw_maps, redraw_inputs, [teacher_plot, student_plot], **heavy)
    snapshot.release(draw_maps, redraw_inputs, [teacher_plot, student_plot], **heavy)
    api_button.click(classify_api, [api_support, api_labels, api_queries, api_steps, api_maps], api_out, api_name="classify",
                     concurrency_limit=2, concurrency_id="task")
    measure_button.click(measure_here, None, measured, **heavy)
    demo.unload(end_session)
    demo.load(val_maps, None, [val_teacher_plot, val_student_plot], api_visibility="private")
    demo.load(compression_figures, None, [accuracy_plot, parameters_plot, latency_plot, pruning_plot],
              api_visibility="private")

demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=2)
threading.Thread(target=sweep_uploads_forever, daemon=True).start()

if __name__ == "__main__":
    threading.Thread(target=warm_up, daemon=True).start()
    demo.launch(allowed_paths=[str(GALLERY_DIR)], css=CSS, max_file_size="10mb", show_error=True)
