"""One visitor's few-shot task, end to end, with no UI: validate the images, embed them with both
models, fine-tune a private copy of the student (optionally of the teacher), classify the queries
by prototype, and keep what the page needs to draw the maps."""
from __future__ import annotations

import copy
import hashlib
import threading
from dataclasses import dataclass, field, replace
from html import escape
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .checkpoint import base_mean, save_checkpoint
from .fewshot import (TEMPERATURE, FineTuneConfig, centre, compute_prototypes, fine_tune, reindex_labels,
                      similarities)
from .images import is_photo, load_image, png_data_uri, to_model_image
from .models import Embedder, Embedding, embed_array, to_tensor
from .tracks import embed_views, render_pictures, support_views, view_tensor

MAX_WAY, MAX_SHOT, MAX_QUERY = 10, 10, 50
MAX_STEPS = 100                       # fine-tuning steps a visitor may ask for
MAX_SUPPORT_FILES = 20                # pictures in one class slot (the first MAX_SHOT are used)
MAX_CALL_BYTES = 100 * 1024 * 1024    # their bytes together, counted before decoding
MAX_FINE_TUNE_SECONDS = 20.0          # a fine-tuning run stops here whatever the steps
NONE = -1                             # the answer "none of these"
MODEL_LABELS = {"teacher": "teacher", "student": "student", "student+fine-tune": "fine-tuned student",
                "teacher+fine-tune": "fine-tuned teacher"}


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


class EmbeddingCache:
    """Embeddings of known pictures by content (the gallery's: read from the file made for the shipped
    checkpoints, or computed by `fill`), each set bound to the shared, read-only model it belongs to: a task's
    gallery pictures are then looked up instead of embedded, and any other model (a fine-tuned copy, another
    checkpoint) finds nothing. It never holds a visitor's upload: nothing of one visitor reaches another.
    A fill is taken whole once computed: until then, readers embed the pictures themselves."""

    def __init__(self):
        self._sets: dict[str, tuple[Embedder, dict[bytes, np.ndarray]]] = {}   # name -> (model, key -> embedding)

    @staticmethod
    def key(image: np.ndarray) -> bytes:
        return hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16,
                               person=str(image.shape).encode()[:16]).digest()

    def __len__(self) -> int:
        return min((len(stored) for _, stored in self._sets.values()), default=0)

    def _stored(self, name: str, model: Embedder) -> dict[bytes, np.ndarray]:
        bound, stored = self._sets.get(name, (None, {}))
        return stored if bound is model else {}

    def fill(self, name: str, model: Embedder, images: np.ndarray, batch: int = 64) -> None:
        """Embed `images` ((N, S, S, 3) uint8, preprocessed as a task reads them) with `model`, stored under
        `name` (the shared model's role: "teacher" or "student") and bound to `model`."""
        stored = self._stored(name, model)
        embeddings = embed_array(model, images, batch_size=batch).numpy()
        stored.update((self.key(image), embedding) for image, embedding in zip(images, embeddings))
        self._sets[name] = (model, stored)

    def save(self, path: Path, identity: str) -> None:
        """One .safetensors file: the keys, and each model's embeddings in the keys' order; `identity` names the
        models they belong to (`checkpoint.checkpoint_identity`)."""
        names = sorted(self._sets)
        keys = list(self._sets[names[0]][1])
        tensors = {"keys": torch.from_numpy(np.frombuffer(b"".join(keys), np.uint8).reshape(len(keys), -1).copy())}
        tensors.update({name: torch.from_numpy(np.stack([self._sets[name][1][k] for k in keys])) for name in names})
        save_file(tensors, str(path), metadata={"checkpoints": identity})

    def load(self, path: Path, identity: str, models: dict[str, Embedder]) -> bool:
        """Take the embeddings saved at `path`, bound to `models` (name -> model), if they were made for the
        checkpoints named by `identity`; False (and nothing taken) when the file is missing, unreadable, made for
        other checkpoints or lacks one of `models`."""
        try:
            with safe_open(str(path), framework="pt") as saved:
                if (saved.metadata() or {}).get("checkpoints") != identity or not set(models) <= set(saved.keys()):
                    return False
                keys = [bytes(k) for k in saved.get_tensor("keys").numpy()]
                loaded = {name: (model, dict(zip(keys, saved.get_tensor(name).numpy()))) for name, model in models.items()}
        except (OSError, SafetensorError):
            return False
        self._sets.update(loaded)
        return True

    def embed(self, name: str, model: Embedder, images: np.ndarray) -> torch.Tensor:
        """(N, D) embeddings of `images` ((N, S, S, 3) uint8): those stored for `model`, and `model`'s own for
        the others (which are not stored)."""
        stored = self._stored(name, model)
        found = [stored.get(self.key(image)) for image in images]
        missing = [i for i, e in enumerate(found) if e is None]
        if missing:
            with torch.inference_mode():
                fresh = model.embed(to_tensor(images[missing])).numpy()
            for i, embedding in zip(missing, fresh):
                found[i] = embedding
        return torch.from_numpy(np.stack(found))


@dataclass
class Models:
    """The shared, read-only models with their cards, and the embeddings of the gallery's pictures."""

    teacher: Embedder
    teacher_card: dict
    student: Embedder
    student_card: dict
    cache: EmbeddingCache = field(default_factory=EmbeddingCache)

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
    label: int | None = None   # a query's true class in the task (index into its class names), when known
    alpha: np.ndarray | None = None  # (S, S) uint8 mask of a sprite (gallery pictures): it can be rendered


def embed_known_pictures(models: Models, paths: list[Path]) -> None:
    """Both shared models' embeddings of these pictures (the gallery's), read as a task reads them, into
    `models.cache`."""
    pictures, _ = read_pictures([(path, None, "gallery") for path in paths], models.image_size)  # the readable ones
    images = np.stack([p.image for p in pictures])
    models.cache.fill("teacher", models.teacher, images)
    models.cache.fill("student", models.student, images)


def read_pictures(files: list[tuple], image_size: int, known: Callable[[str], np.ndarray | None] | None = None
                  ) -> tuple[list[Picture], list[str]]:
    """files: (path, truth or None, source[, label]). Returns (pictures, problems): a bad file is a message,
    not an error. known(path): the preprocessed picture when it is a known one (the gallery's), else None."""
    pictures, problems = [], []
    for path, truth, source, *label in files:
        try:
            image = known(path) if known is not None else None
            image = to_model_image(load_image(path), image_size) if image is None else image
            pictures.append(Picture(image, Path(path).name, truth, source, str(path), label[0] if label else None))
        except ValueError as error:
            problems.append(str(error))
    return pictures, problems


@dataclass
class Slot:
    """One class slot of the page: its name and pictures as (path, species or None, source) items."""

    name: str
    supports: list[tuple[str, str | None, str]]
    tests: list[tuple[str, str | None, str]] = field(default_factory=list)  # the visitor's own test pictures


@dataclass
class TaskPlan:
    """What a task will run, decided from the slots before any picture is decoded."""

    class_names: list[str]
    supports: list[list[tuple[str, str | None, str]]]   # per class, at most MAX_SHOT
    queries: list[tuple[str, str | None, str, int | None]]  # (path, species, source, true class or None)
    notes: list[str]


SHOT_RULE = (f"Each class uses all its pictures, up to {MAX_SHOT}; classes may hold different numbers. "
             "Slots without pictures are left out.")


def plan_task(slots: list[Slot], queries: list[tuple[str, str | None, str]]) -> TaskPlan:
    """The classes of a task from the page's slots, in classroom rules rather than errors: slots without
    pictures are left out, a slot without a name is named after its gallery species (or "class k"), each
    class uses up to MAX_SHOT of its pictures. A query's truth is a class, not a name: a slot's own test
    pictures belong to it, and a gallery query belongs to the one class whose supports show its species
    (so renaming a class keeps its truth). ValueErrors only for what cannot run (under 2 classes, one
    name twice)."""
    notes, kept = [], []
    for k, slot in enumerate(slots, start=1):
        name = (slot.name or "").strip()
        if not slot.supports:
            if name or slot.tests:
                notes.append(f"class {k} ('{name}') has no pictures and was left out" if name else
                             f"class {k} has test pictures but no support pictures and was left out")
            continue
        if not name:
            species = {s for _, s, _ in slot.supports}
            name = species.pop() if len(species) == 1 and None not in species else f"class {k}"
        if len(slot.supports) > MAX_SHOT:
            notes.append(f"class {k} ('{name}') holds {len(slot.supports)} pictures; the first {MAX_SHOT} are used")
        kept.append((name, slot))
    if not 2 <= len(kept) <= MAX_WAY:
        raise ValueError(f"a task needs 2 to {MAX_WAY} classes with pictures; this one has {len(kept)}")
    names = [name for name, _ in kept]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"two classes are both called '{duplicates[0]}': give each class its own name")
    owner: dict[str, set[int]] = {}
    for index, (_, slot) in enumerate(kept):
        for _, species, _ in slot.supports[:MAX_SHOT]:
            if species is not None:
                owner.setdefault(species, set()).add(index)
    def truth(species):  # the one class showing the species; NONE for a known species no class shows
        if species is None or len(owner.get(species, ())) > 1:
            return None
        return next(iter(owner[species])) if species in owner else NONE

    planned = [(path, species, source, truth(species)) for path, species, source in queries]
    planned += [(path, species, source, index) for index, (_, slot) in enumerate(kept)
                for path, species, source in slot.tests]
    return TaskPlan(names, [list(slot.supports[:MAX_SHOT]) for _, slot in kept], planned, notes)


def photo_like(pictures: list[Picture], alphas: list[np.ndarray | None], seed: int) -> list[Picture]:
    """Pictures with an alpha mask (gallery sprites) rendered like phone photos by the benchmark's renderer
    (`tracks.render_pictures`, its held-out `test` backgrounds), seeded; the others unchanged. The
    rendered picture is what the models see and what the page shows."""
    chosen = [k for k, alpha in enumerate(alphas) if alpha is not None]
    if not chosen:
        return pictures
    # one bank for every task seed, each seed drawing its own pictures from it: a bank per seed cost a photo
    # task about a second of CPU, and pushed the supports' views' banks out of the cache
    rendered = render_pictures(np.stack([pictures[k].image for k in chosen]), np.stack([alphas[k] for k in chosen]),
                               "test", seed, bank_seed=0)
    out = list(pictures)
    for k, image in zip(chosen, rendered):
        out[k] = replace(pictures[k], image=image, source=pictures[k].source + ", photo-like")
    return out


def make_photo_banks(image_size: int) -> None:
    """Make the background banks a task with photos reads (the supports' photo-like views, `prepare_views`, and
    photo-like queries, `photo_like`) before the first such task: about a second of CPU each on first use."""
    sprite = np.full((1, image_size, image_size, 3), 255, np.uint8)
    alpha = np.full((1, image_size, image_size), 255, np.uint8)
    support_views(sprite, alpha)
    photo_like([Picture(sprite[0], "blank")], [alpha[0]], 0)


def check_task(class_names: list[str], supports: list[list[Picture]], queries: list[Picture]) -> None:
    """ValueErrors in classroom words for a task that cannot run."""
    names = [n.strip() for n in class_names]
    if not 2 <= len(names) <= MAX_WAY:
        raise ValueError(f"a task needs 2 to {MAX_WAY} classes; this one has {len(names)}")
    if any(not n for n in names):
        raise ValueError(f"class {names.index('') + 1} has no name: give every class a name")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"two classes are both called '{duplicates[0]}': give each class its own name")
    for k, (name, pictures) in enumerate(zip(names, supports), start=1):
        if not pictures:
            raise ValueError(f"class {k} ('{name}') has no usable picture")
    if not queries:
        raise ValueError("add at least one query image to classify")
    if len(queries) > MAX_QUERY:
        raise ValueError(f"{len(queries)} query images; at most {MAX_QUERY} at a time")


@dataclass
class TaskResult:
    class_names: list[str]
    support_labels: np.ndarray                 # (n_support,)
    query_labels: list[int | None]             # each query's true class, when known
    pictures: list[Picture]                    # support then query
    embeddings: dict[str, np.ndarray]          # model -> (n_support + n_query, D)
    probabilities: dict[str, np.ndarray]       # model -> (n_query, n_way)
    similarities: dict[str, np.ndarray] = field(default_factory=dict)  # model -> (n_query,) cosine to the nearest prototype
    snapshots: list[np.ndarray] = field(default_factory=list)  # student during fine-tuning
    snapshot_steps: list[int] = field(default_factory=list)    # the fine-tuning step of each snapshot
    fine_tune_seconds: float = 0.0
    cancelled: bool = False
    timed_out: bool = False                    # fine-tuning stopped at MAX_FINE_TUNE_SECONDS
    tuned_student: torch.nn.Module | None = None  # the visitor's private fine-tuned copy (download, webcam)
    view_images: np.ndarray | None = None      # (K, n_support, S, S, 3): the supports rendered photo-like
    photo_queries: np.ndarray | None = None    # (n_query,) bool: queries that are photos (`is_photo`)
    # (picture index, size) -> inline PNG: the grid, the details and both maps show the same pictures; shared
    # by the copies `refine` makes of the first answer (the same pictures)
    _picture_uris: dict[tuple[int, int], str] = field(default_factory=dict, repr=False)

    @property
    def n_support(self) -> int:
        return len(self.support_labels)

    def picture_uri(self, index: int, size: int) -> str:
        """Picture `index` (supports, then queries) as a small inline PNG, made once per task and size."""
        key = (index, size)
        if key not in self._picture_uris:
            self._picture_uris[key] = png_data_uri(self.pictures[index].image, size)
        return self._picture_uris[key]

    def predictions(self, model: str) -> list[str]:
        return [self.class_names[k] for k in self.probabilities[model].argmax(axis=1)]

    def answers(self, model: str, threshold: float | None = None) -> np.ndarray:
        """(n_query,) the chosen class of each query, or NONE where the nearest prototype's cosine
        similarity is below `threshold` ("none of these")."""
        chosen = self.probabilities[model].argmax(axis=1)
        if threshold is not None and model in self.similarities:
            chosen = np.where(self.similarities[model] < threshold, NONE, chosen)
        return chosen

    def judged(self, threshold: float | None = None) -> list[bool]:
        """Which queries count for accuracy: those whose class is known, and the pictures of species outside
        the task (truth NONE) only when "none of these" can be answered (a threshold)."""
        return [t is not None and (t != NONE or threshold is not None) for t in self.query_labels]

    def accuracy(self, model: str, threshold: float | None = None) -> float | None:
        """Accuracy over the judged queries (None when there is none): an answer is right when it is the
        query's class, or "none of these" for a picture of no class of the task."""
        pairs = [(int(p), t) for p, t, j in zip(self.answers(model, threshold), self.query_labels,
                                                 self.judged(threshold)) if j]
        return float(np.mean([p == t for p, t in pairs])) if pairs else None


def prepare_views(result: TaskResult) -> None:
    """The supports rendered like phone photos (`tracks.support_views`, training backgrounds), once per task,
    for photo-ready prototypes: only when a query is a photo and a support is a sprite with its mask (a
    support without one keeps its own picture in every view)."""
    supports = result.pictures[:result.n_support]
    if result.view_images is not None or not any(p.alpha is not None for p in supports):
        return
    images = np.stack([p.image for p in supports])
    masks = np.stack([p.alpha if p.alpha is not None else np.full(p.image.shape[:2], 255, np.uint8) for p in supports])
    views = support_views(images, masks)
    views[:, [p.alpha is None for p in supports]] = images[[p.alpha is None for p in supports]]
    result.view_images = views


def _view_pictures(result: TaskResult) -> torch.Tensor | None:
    """(K, n_support, 3, S, S): the supports' photo-like views as the models take them, None when there are none."""
    return None if result.view_images is None else view_tensor(result.view_images)


def _view_embeddings(result: TaskResult, model: Embedder) -> torch.Tensor | None:
    views = _view_pictures(result)
    return None if views is None else embed_views(model, views)


def _evaluate(result: TaskResult, key: str, model: Embedder, mean: torch.Tensor | None,
              cache: EmbeddingCache | None = None, embeddings: torch.Tensor | None = None) -> None:
    """Embed the task's pictures with `model` (looked up in `cache` under `key` where they are known, or
    `embeddings` when the caller has them), classify its queries by prototype (photo-ready prototypes for
    photo queries, `fewshot.similarities`), store the embeddings, probabilities and similarities under `key`."""
    n_support = result.n_support
    if embeddings is None:
        images = np.stack([p.image for p in result.pictures])                  # (n_support + n_query, S, S, 3)
        if cache is not None:
            embeddings = cache.embed(key, model, images)
        else:
            with torch.inference_mode():
                embeddings = model.embed(to_tensor(images))
    labels = torch.from_numpy(result.support_labels)
    photos = torch.from_numpy(result.photo_queries) if result.photo_queries is not None else None
    cosines = similarities(embeddings[:n_support], labels, embeddings[n_support:], mean,
                           _view_embeddings(result, model), photos)
    result.embeddings[key] = embeddings.numpy()
    result.probabilities[key] = (cosines / TEMPERATURE).softmax(dim=-1).numpy()
    result.similarities[key] = cosines.max(dim=1).values.numpy()


def first_answer(models: Models, class_names: list[str], supports: list[list[Picture]], queries: list[Picture],
                 progress: Callable[[float, str], None] | None = None) -> TaskResult:
    """Check the task, then classify `queries` with the shared teacher and student (no training: a second).
    Each class uses up to MAX_SHOT of its pictures; a query's true class is its `label`."""
    supports = [pictures[:MAX_SHOT] for pictures in supports]
    check_task(class_names, supports, queries)
    progress = progress or (lambda fraction, text: None)
    names, labels = reindex_labels([n.strip() for n, pictures in zip(class_names, supports) for _ in pictures])
    pictures = [p for pictures in supports for p in pictures] + queries
    result = TaskResult(names, labels, [q.label for q in queries], pictures, {}, {})
    result.photo_queries = np.asarray([is_photo(Image.fromarray(q.image)) for q in queries], dtype=bool)
    if result.photo_queries.any():
        prepare_views(result)
    progress(0.05, "embedding with the teacher")
    _evaluate(result, "teacher", models.teacher, base_mean(models.teacher_card), models.cache)
    progress(0.15, "embedding with the student")
    _evaluate(result, "student", models.student, base_mean(models.student_card), models.cache)
    return result


def refine(models: Models, result: TaskResult, fine_tune_steps: int = 5, fine_tune_teacher: bool = False,
           cancel: threading.Event | None = None, progress: Callable[[float, str], None] | None = None,
           snapshot_every: int = 5) -> TaskResult:
    """Fine-tune a private copy of the student (and of the teacher, if asked) on the task's supports; returns
    a copy of `result` with its answers added. The shared models are never modified."""
    if not 0 <= fine_tune_steps <= MAX_STEPS:
        raise ValueError(f"fine-tuning steps must be between 0 and {MAX_STEPS}, got {fine_tune_steps}")
    # a new result: the first answer may already be on the page, where a map redraw can read it meanwhile
    result = replace(result, embeddings=dict(result.embeddings), probabilities=dict(result.probabilities),
                     similarities=dict(result.similarities))
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
    # the supports rendered like photos, when the task has photo queries and the config shows them to fine-tuning
    views = _view_pictures(result) if config.photo_copies else None
    tuned = fine_tune(models.student, support_images, support_labels, config, cancel,
                      callback=lambda step, loss: progress(0.2 + 0.6 * step / config.steps,
                                                           f"fine-tuning the student: step {step}/{config.steps}, "
                                                           f"loss {loss:.3f}"),
                      snapshot_every=snapshot_every, snapshot_images=images,
                      first_snapshot=torch.from_numpy(result.embeddings["student"]), support_views=views)
    result.cancelled, result.fine_tune_seconds = tuned.cancelled, tuned.seconds
    result.timed_out = tuned.timed_out
    result.snapshots = [s.numpy() for s in tuned.snapshots]
    result.snapshot_steps = list(tuned.snapshot_steps)
    result.tuned_student = tuned.model
    # the last snapshot is the tuned model's embeddings of the same pictures
    _evaluate(result, "student+fine-tune", tuned.model, base_mean(models.student_card),
              embeddings=tuned.snapshots[-1].clone() if tuned.snapshots else None)
    if fine_tune_teacher and not tuned.cancelled:
        tuned_teacher = fine_tune(models.teacher, support_images, support_labels, FineTuneConfig(
            steps=max(1, fine_tune_steps // 2), max_seconds=MAX_FINE_TUNE_SECONDS), cancel,
            callback=lambda s, l: progress(0.85, f"fine-tuning the teacher: step {s}"))
        result.cancelled = tuned_teacher.cancelled
        result.timed_out = result.timed_out or tuned_teacher.timed_out
        _evaluate(result, "teacher+fine-tune", tuned_teacher.model, base_mean(models.teacher_card))
    return result


def run_task(models: Models, class_names: list[str], supports: list[list[Picture]], queries: list[Picture],
             fine_tune_steps: int = 5, fine_tune_teacher: bool = False,
             cancel: threading.Event | None = None, progress: Callable[[float, str], None] | None = None,
             snapshot_every: int = 5) -> TaskResult:
    """Classify `queries` with teacher, student and fine-tuned student, in one call (the API's answer)."""
    if not 0 <= fine_tune_steps <= MAX_STEPS:
        raise ValueError(f"fine-tuning steps must be between 0 and {MAX_STEPS}, got {fine_tune_steps}")
    result = first_answer(models, class_names, supports, queries, progress)
    return refine(models, result, fine_tune_steps, fine_tune_teacher, cancel, progress, snapshot_every)


def map_points(result: TaskResult, key: str, embeddings: np.ndarray | None = None,
               answers: np.ndarray | None = None) -> dict:
    """What one model's map shows: supports, queries and a prototype per class.

    embeddings: (n_support + n_query, D), default result.embeddings[key].
    answers: (n_query,) the classes chosen with these embeddings (default: the model's answers), for mistakes.
    returns {"embeddings": (N + n_way, D), "labels", "role", "hover", "mistakes", "thumbnails"}; a query's
    label is its true class when known, else the class the model chose.
    """
    embeddings = result.embeddings[key] if embeddings is None else embeddings
    n_support, n_way = result.n_support, len(result.class_names)
    probability_key = key if key in result.probabilities else "student"
    predicted = result.probabilities[probability_key].argmax(axis=1)
    truth = [-1 if t is None else t for t in result.query_labels]
    query_labels = np.asarray([t if t >= 0 else p for t, p in zip(truth, predicted)], dtype=np.int64)
    wrong = predicted if answers is None else answers
    prototypes = np.stack([embeddings[:n_support][result.support_labels == k].mean(axis=0) for k in range(n_way)])
    prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True)
    queries = result.pictures[n_support:]
    names = [escape(n) for n in result.class_names]  # plotly renders hover text as HTML: visitors' words are escaped
    hover = [f"support: {names[l]}<br>{escape(p.name)} ({escape(p.source)})"
             for l, p in zip(result.support_labels, result.pictures[:n_support])]
    hover += [f"query {escape(p.name)} ({escape(p.source)})<br>true: {names[t] if t >= 0 else 'not known'}<br>"
              f"answer: {names[k]} ({result.probabilities[probability_key][i, k]:.0%})"
              for i, (p, t, k) in enumerate(zip(queries, truth, predicted))]
    hover += [f"prototype (average) of {name}" for name in names]
    mistakes = np.zeros(len(hover), dtype=bool)
    mistakes[n_support:n_support + len(queries)] = [t >= 0 and t != p for t, p in zip(truth, wrong)]
    return {"embeddings": np.concatenate([embeddings, prototypes]),
            "labels": np.concatenate([result.support_labels, query_labels, np.arange(n_way)]),
            "role": np.asarray(["support"] * n_support + ["query"] * len(queries) + ["prototype"] * n_way),
            "hover": hover, "mistakes": mistakes, "thumbnails": [p.image for p in result.pictures] + [None] * n_way}


def classify_picture(models: Models, result: TaskResult, image: np.ndarray) -> tuple[str, np.ndarray, float]:
    """One more picture (a webcam frame, (S, S, 3) uint8 preprocessed) against a finished task's classes,
    with the visitor's fine-tuned student (the shared student when there was no fine-tuning).
    Returns (model key, probabilities (n_way,), cosine similarity to the nearest prototype)."""
    key = "student+fine-tune" if result.tuned_student is not None else "student"
    model = result.tuned_student if result.tuned_student is not None else models.student
    mean = base_mean(models.student_card)
    with torch.inference_mode():
        embedding = model.embed(to_tensor(image[None]))
    supports = torch.from_numpy(result.embeddings[key][:result.n_support])
    photo = torch.tensor([is_photo(Image.fromarray(image))])
    if photo.any():
        prepare_views(result)
    cosines = similarities(supports, torch.from_numpy(result.support_labels), embedding, mean,
                           _view_embeddings(result, model) if photo.any() else None, photo)[0]
    return key, (cosines / TEMPERATURE).softmax(dim=-1).numpy(), float(cosines.max())


def export_tuned_student(models: Models, result: TaskResult, folder: Path) -> list[Path]:
    """The visitor's fine-tuned student as `.safetensors` + JSON card (the card also holds the task's class
    names and their prototypes, centred and normalised, so the download classifies on its own), and its
    embedding as ONNX. Neither blends photos with their cut-out (`photo_blend`): the segmenter stays here."""
    if result.tuned_student is None:
        raise ValueError("there is no fine-tuned student yet: run a task with fine-tuning steps above 0")
    mean = base_mean(models.student_card)
    images = to_tensor(np.stack([p.image for p in result.pictures[:result.n_support]]))
    with torch.inference_mode():
        supports = result.tuned_student.embed(images, blend_photos=False)
    prototypes = compute_prototypes(centre(supports, mean), torch.from_numpy(result.support_labels))
    # the download embeds as its ONNX twin does, its prototypes too: without the photo blend, whose segmenter
    # does not travel with it
    card = {k: v for k, v in models.student_card.items()
            if k not in ("scores", "scores_command", "commands", "photo_blend", "photo_blend_val")}
    card["fine_tuned_on"] = {"classes": result.class_names, "support_pictures": int(result.n_support),
                             "seconds": round(result.fine_tune_seconds, 2),
                             "prototypes": np.round(prototypes.numpy(), 5).tolist()}
    path = save_checkpoint(result.tuned_student, Path(folder) / "fine-tuned-student.safetensors", card)
    onnx = path.with_suffix(".onnx")  # the same embedding for other runtimes: (batch, 3, S, S) in [0, 1] -> (batch, D)
    size = int(card.get("input_size", 64))
    program = torch.onnx.export(Embedding(copy.deepcopy(result.tuned_student).cpu()).eval(),
                                (torch.rand(2, 3, size, size),), dynamo=True, verbose=False,
                                dynamic_shapes=({0: torch.export.Dim("batch")},))
    program.save(str(onnx))
    return [path, path.with_suffix(".json"), onnx]
