"""The task's teacher | student maps, made to be compared: the student's map starts from the teacher's
map and is turned onto it (Procrustes), and its fine-tuning snapshots are one series, each started
from the previous, so the slider moves the same points instead of drawing a new map each time."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from . import projection, viz
from .fewshot import classify
from .task import TaskResult, map_points

MAX_FRAMES = 6   # snapshots drawn on the student's slider (evenly spaced, first and last always)


def frame_steps(n_snapshots: int, every: int, limit: int = MAX_FRAMES) -> list[int]:
    """Which snapshots the slider shows (indices), evenly spaced, the first and the last included."""
    if n_snapshots <= limit:
        return list(range(n_snapshots))
    return sorted({int(round(i)) for i in np.linspace(0, n_snapshots - 1, limit)})


def _answers(result: TaskResult, embeddings: np.ndarray, mean: torch.Tensor | None) -> np.ndarray:
    """The class each query gets from a snapshot's embeddings (nearest prototype, as the table's models)."""
    n = result.n_support
    tensor = torch.from_numpy(embeddings)
    return classify(tensor[:n], torch.from_numpy(result.support_labels), tensor[n:], mean).argmax(dim=1).numpy()


class TaskMapPoints(NamedTuple):
    """Both maps of a task, without figures. Points: supports, then queries, then one prototype per class."""

    teacher: dict              # the teacher's `map_points`
    teacher_xy: np.ndarray     # (N, 2) its map
    student: dict              # the student's `map_points` (the fine-tuned student when there is one)
    frames: list[tuple[str, np.ndarray, np.ndarray]]  # (name, (N, 2) map, mistakes): the last is the final map


def task_coordinates(result: TaskResult, method: str, parameter: float, seed: int,
                     student_mean: torch.Tensor | None = None, snapshot_every: int = 5,
                     with_snapshots: bool = True) -> TaskMapPoints:
    """Both maps' points. The student's frames are its fine-tuning snapshots (`with_snapshots`, when there are
    some), each map started from the previous and the first from the teacher's; else its final map alone."""
    teacher = map_points(result, "teacher")
    teacher_xy = projection.project(teacher["embeddings"], method, parameter, seed)
    key = "student+fine-tune" if "student+fine-tune" in result.embeddings else "student"
    final = map_points(result, key)
    embeddings, names, wrong = [final["embeddings"]], ["fine-tuned" if key != "student" else "student"], [final["mistakes"]]
    if key != "student" and len(result.snapshots) > 1 and with_snapshots:
        embeddings, names, wrong = [], [], []
        for index in frame_steps(len(result.snapshots), snapshot_every):
            answers = _answers(result, result.snapshots[index], student_mean)
            points = map_points(result, key, result.snapshots[index], answers)
            embeddings.append(points["embeddings"])
            wrong.append(points["mistakes"])
            step = result.snapshot_steps[index] if index < len(result.snapshot_steps) else index * snapshot_every
            names.append("before fine-tuning" if step == 0 else f"after {step} steps")
    maps = projection.project_aligned(embeddings, method, parameter, seed, reference=teacher_xy)
    return TaskMapPoints(teacher, teacher_xy, final, list(zip(names, maps, wrong)))


def task_maps(result: TaskResult, method: str, parameter: float, seed: int, thumbnails: bool = False,
              student_mean: torch.Tensor | None = None, snapshot_every: int = 5, height: int = 380):
    """(teacher figure, student figure) of one task. The student's figure is the fine-tuned student when
    there is one, with a slider over its fine-tuning snapshots (unless the pictures are drawn)."""
    points = task_coordinates(result, method, parameter, seed, student_mean, snapshot_every,
                              with_snapshots=not thumbnails)
    teacher, final = points.teacher, points.student
    uris = [result.picture_uri(i, 40) for i in range(len(result.pictures))] + [""] * len(result.class_names)
    figures = [viz.embedding_figure(points.teacher_xy, teacher["labels"], teacher["role"], result.class_names,
                                    teacher["hover"], teacher["mistakes"], "teacher (ResNet18, 11M parameters)",
                                    teacher["thumbnails"] if thumbnails else None, hover_pictures=uris,
                                    height=height)]
    tuned = "student+fine-tune" in result.embeddings
    title = "student (94k parameters)" + (", fine-tuned on your pictures" if tuned else "")
    _, student_xy, mistakes = points.frames[-1]
    figures.append(viz.embedding_figure(student_xy, final["labels"], final["role"], result.class_names, final["hover"],
                                        mistakes, title, final["thumbnails"] if thumbnails else None,
                                        frames=points.frames if len(points.frames) > 1 else (), hover_pictures=uris,
                                        height=height))
    return figures[0], figures[1]
