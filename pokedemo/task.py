"""One visitor's few-shot task, end to end, with no UI: validate the images, embed them with both
models, fine-tune a private copy of the student (optionally of the teacher), classify the queries
by prototype, and keep what the page needs to draw the maps."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from html import escape
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .checkpoint import base_mean
from .fewshot import FineTuneConfig, classify, fine_tune, reindex_labels
from .images import load_image, to_model_image
from .models import Embedder, to_tensor
from .tracks import render_pictures

MAX_WAY, MAX_SHOT, MAX_QUERY = 10, 10, 50
MAX_STEPS = 100                       # fine-tuning steps a visitor may ask for
MAX_SUPPORT_FILES = 20                # pictures in one class slot (the first n_shot are used)
MAX_CALL_BYTES = 100 * 1024 * 1024    # their bytes together, counted before decoding
MAX_FINE_TUNE_SECONDS = 20.0          # a fine-tuning run stops here whatever the steps


def check_request(support_paths: list[list[str]], query_paths: list[str], steps: int) -> None:
    """Limits on what one call may ask, checked before any picture is decoded: ValueErrors naming the limit."""
    if not 0 <= steps <= MAX_STEPS:
        raise ValueError(f"fine-tuning steps must be between 0 and {MAX_STEPS}, got {steps}")
    if len(support_paths) > MAX_WAY:
        raise ValueError(f"{len(support_paths)} classes; at most {MAX_WAY}")
    for k, paths in enumerate(support_paths, start=1):
        if len(paths) > MAX_SUPPORT_FILES:
            raise ValueError(f"class {k} has {len(paths)} pictures; at most {MAX_SUPPORT_FILES} per class")
    if len(query_paths) > MAX_QUERY:
        raise ValueError(f"{len(query_paths)} query images; at most {MAX_QUERY} at a time")
    total = 0
    for path in [p for paths in support_paths for p in paths] + list(query_paths):
        try:
            total += Path(path).stat().st_size
        except OSError:
            continue  # a missing file is reported by name when it is read
    if total > MAX_CALL_BYTES:
        raise ValueError(f"the pictures of this task weigh {total / 2 ** 20:.0f} MB together; the limit is "
                         f"{MAX_CALL_BYTES // 2 ** 20} MB per task")


@dataclass
class Models:
    """The shared, read-only models with their cards."""

    teacher: Embedder
    teacher_card: dict
    student: Embedder
    student_card: dict

    @property
    def image_size(self) -> int:
        return int(self.student_card.get("input_size", 64))


@dataclass
class Picture:
    image: np.ndarray          # (S, S, 3) uint8, preprocessed
    name: str                  # the file name shown to the visitor
    truth: str | None = None   # the species, when known (gallery pictures)
    source: str = "upload"
    path: str = ""             # where it was read from


def read_pictures(files: list[tuple[str, str | None, str]], image_size: int) -> tuple[list[Picture], list[str]]:
    """files: (path, truth or None, source). Returns (pictures, problems): a bad file is a message, not an error."""
    pictures, problems = [], []
    for path, truth, source in files:
        try:
            pictures.append(Picture(to_model_image(load_image(path), image_size), Path(path).name, truth, source,
                                    str(path)))
        except ValueError as error:
            problems.append(str(error))
    return pictures, problems


def photo_like(pictures: list[Picture], alphas: list[np.ndarray | None], seed: int) -> list[Picture]:
    """Pictures with an alpha mask (gallery sprites) rendered like phone photos by the benchmark's renderer
    (`tracks.render_pictures`, its held-out `test` backgrounds), seeded; the others unchanged. The
    rendered picture is what the models see and what the page shows."""
    chosen = [k for k, alpha in enumerate(alphas) if alpha is not None]
    if not chosen:
        return pictures
    rendered = render_pictures(np.stack([pictures[k].image for k in chosen]), np.stack([alphas[k] for k in chosen]),
                               "test", seed)
    out = list(pictures)
    for k, image in zip(chosen, rendered):
        out[k] = Picture(image, pictures[k].name, pictures[k].truth, pictures[k].source + ", photo-like",
                         pictures[k].path)
    return out


def check_task(class_names: list[str], supports: list[list[Picture]], queries: list[Picture], n_shot: int) -> None:
    """ValueErrors in classroom words for a task that cannot run."""
    names = [n.strip() for n in class_names]
    if not 2 <= len(names) <= MAX_WAY:
        raise ValueError(f"a task needs 2 to {MAX_WAY} classes; this one has {len(names)}")
    if any(not n for n in names):
        raise ValueError(f"class {names.index('') + 1} has no name: give every class a name")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"two classes are both called '{duplicates[0]}': give each class its own name")
    if not 1 <= n_shot <= MAX_SHOT:
        raise ValueError(f"shots must be between 1 and {MAX_SHOT}, got {n_shot}")
    for k, (name, pictures) in enumerate(zip(names, supports), start=1):
        if len(pictures) < n_shot:
            raise ValueError(f"class {k} ('{name}') has {len(pictures)} usable image(s); a {n_shot}-shot task "
                             f"needs at least {n_shot}")
    if not queries:
        raise ValueError("add at least one query image to classify")
    if len(queries) > MAX_QUERY:
        raise ValueError(f"{len(queries)} query images; at most {MAX_QUERY} at a time")


@dataclass
class TaskResult:
    class_names: list[str]
    support_labels: np.ndarray                 # (n_support,)
    query_truth: list[str | None]
    pictures: list[Picture]                    # support then query
    embeddings: dict[str, np.ndarray]          # model -> (n_support + n_query, D)
    probabilities: dict[str, np.ndarray]       # model -> (n_query, n_way)
    snapshots: list[np.ndarray] = field(default_factory=list)  # student during fine-tuning
    fine_tune_seconds: float = 0.0
    cancelled: bool = False
    timed_out: bool = False                    # fine-tuning stopped at MAX_FINE_TUNE_SECONDS

    def predictions(self, model: str) -> list[str]:
        return [self.class_names[k] for k in self.probabilities[model].argmax(axis=1)]

    def accuracy(self, model: str) -> float | None:
        known = [(p, t) for p, t in zip(self.predictions(model), self.query_truth) if t is not None]
        if not known or any(t not in self.class_names for _, t in known):
            return None
        return float(np.mean([p == t for p, t in known]))


def _evaluate(result: TaskResult, key: str, model: Embedder, mean: torch.Tensor | None) -> None:
    """Embed the task's pictures with `model`, classify its queries by prototype, store both under `key`."""
    images = to_tensor(np.stack([p.image for p in result.pictures]))           # (n_support + n_query, 3, S, S)
    n_support = len(result.support_labels)
    with torch.inference_mode():
        embeddings = model.embed(images)
    result.embeddings[key] = embeddings.numpy()
    result.probabilities[key] = classify(embeddings[:n_support], torch.from_numpy(result.support_labels),
                                         embeddings[n_support:], mean).numpy()


def first_answer(models: Models, class_names: list[str], supports: list[list[Picture]], queries: list[Picture],
                 n_shot: int, progress: Callable[[float, str], None] | None = None) -> TaskResult:
    """Check the task, then classify `queries` with the shared teacher and student (no training: a second)."""
    check_task(class_names, supports, queries, n_shot)
    progress = progress or (lambda fraction, text: None)
    names, labels = reindex_labels([n.strip() for n, pictures in zip(class_names, supports)
                                    for _ in pictures[:n_shot]])
    pictures = [p for pictures in supports for p in pictures[:n_shot]] + queries
    result = TaskResult(names, labels, [q.truth for q in queries], pictures, {}, {})
    progress(0.05, "embedding with the teacher")
    _evaluate(result, "teacher", models.teacher, base_mean(models.teacher_card))
    progress(0.15, "embedding with the student")
    _evaluate(result, "student", models.student, base_mean(models.student_card))
    return result


def refine(models: Models, result: TaskResult, fine_tune_steps: int = 5, fine_tune_teacher: bool = False,
           cancel: threading.Event | None = None, progress: Callable[[float, str], None] | None = None,
           snapshot_every: int = 5) -> TaskResult:
    """Fine-tune a private copy of the student (and of the teacher, if asked) on the task's supports; returns
    a copy of `result` with its answers added. The shared models are never modified."""
    if not 0 <= fine_tune_steps <= MAX_STEPS:
        raise ValueError(f"fine-tuning steps must be between 0 and {MAX_STEPS}, got {fine_tune_steps}")
    # a new result: the first answer may already be on the page, where a map redraw can read it meanwhile
    result = replace(result, embeddings=dict(result.embeddings), probabilities=dict(result.probabilities))
    if cancel is not None and cancel.is_set():
        result.cancelled = True
        return result
    if fine_tune_steps == 0:
        return result
    progress = progress or (lambda fraction, text: None)
    images = to_tensor(np.stack([p.image for p in result.pictures]))
    support_images = images[:len(result.support_labels)]
    support_labels = torch.from_numpy(result.support_labels)
    config = FineTuneConfig(steps=fine_tune_steps, max_seconds=MAX_FINE_TUNE_SECONDS)
    tuned = fine_tune(models.student, support_images, support_labels, config, cancel,
                      callback=lambda step, loss: progress(0.2 + 0.6 * step / config.steps,
                                                           f"fine-tuning the student: step {step}/{config.steps}, "
                                                           f"loss {loss:.3f}"),
                      snapshot_every=snapshot_every, snapshot_images=images)
    result.cancelled, result.fine_tune_seconds = tuned.cancelled, tuned.seconds
    result.timed_out = tuned.timed_out
    result.snapshots = [s.numpy() for s in tuned.snapshots]
    _evaluate(result, "student+fine-tune", tuned.model, base_mean(models.student_card))
    if fine_tune_teacher and not tuned.cancelled:
        tuned_teacher = fine_tune(models.teacher, support_images, support_labels, FineTuneConfig(
            steps=max(1, fine_tune_steps // 2), max_seconds=MAX_FINE_TUNE_SECONDS), cancel,
            callback=lambda s, l: progress(0.85, f"fine-tuning the teacher: step {s}"))
        result.cancelled = tuned_teacher.cancelled
        result.timed_out = result.timed_out or tuned_teacher.timed_out
        _evaluate(result, "teacher+fine-tune", tuned_teacher.model, base_mean(models.teacher_card))
    return result


def run_task(models: Models, class_names: list[str], supports: list[list[Picture]], queries: list[Picture],
             n_shot: int, fine_tune_steps: int = 5, fine_tune_teacher: bool = False,
             cancel: threading.Event | None = None, progress: Callable[[float, str], None] | None = None,
             snapshot_every: int = 5) -> TaskResult:
    """Classify `queries` with teacher, student and fine-tuned student, in one call (the API's answer)."""
    if not 0 <= fine_tune_steps <= MAX_STEPS:
        raise ValueError(f"fine-tuning steps must be between 0 and {MAX_STEPS}, got {fine_tune_steps}")
    result = first_answer(models, class_names, supports, queries, n_shot, progress)
    return refine(models, result, fine_tune_steps, fine_tune_teacher, cancel, progress, snapshot_every)


def map_points(result: TaskResult, key: str, embeddings: np.ndarray | None = None) -> dict:
    """What one model's map shows: supports, queries and a prototype per class.

    embeddings: (n_support + n_query, D), default result.embeddings[key].
    returns {"embeddings": (N + n_way, D), "labels", "role", "hover", "mistakes", "thumbnails"}
    """
    embeddings = result.embeddings[key] if embeddings is None else embeddings
    n_support, n_way = len(result.support_labels), len(result.class_names)
    probability_key = key if key in result.probabilities else "student"
    predicted = result.probabilities[probability_key].argmax(axis=1)
    truth = [result.class_names.index(t) if t in result.class_names else -1 for t in result.query_truth]
    query_labels = np.asarray([t if t >= 0 else p for t, p in zip(truth, predicted)])
    prototypes = np.stack([embeddings[:n_support][result.support_labels == k].mean(axis=0) for k in range(n_way)])
    prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True)
    queries = result.pictures[n_support:]
    names = [escape(n) for n in result.class_names]  # plotly renders hover text as HTML: visitors' words are escaped
    hover = [f"support: {names[l]}<br>{escape(p.name)} ({p.source})"
             for l, p in zip(result.support_labels, result.pictures[:n_support])]
    hover += [f"query {escape(p.name)} ({p.source})<br>true: {escape(p.truth or '?')}<br>predicted: {names[k]} "
              f"({result.probabilities[probability_key][i, k]:.0%})" for i, (p, k) in enumerate(zip(queries, predicted))]
    hover += [f"prototype of {name}" for name in names]
    mistakes = np.zeros(len(hover), dtype=bool)
    mistakes[n_support:n_support + len(queries)] = [t >= 0 and t != p for t, p in zip(truth, predicted)]
    return {"embeddings": np.concatenate([embeddings, prototypes]),
            "labels": np.concatenate([result.support_labels, query_labels, np.arange(n_way)]),
            "role": np.asarray(["support"] * n_support + ["query"] * len(queries) + ["prototype"] * n_way),
            "hover": hover, "mistakes": mistakes, "thumbnails": [p.image for p in result.pictures] + [None] * n_way}
