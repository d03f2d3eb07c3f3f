"""The task's teacher | student maps, made to be compared: the student's map starts from the teacher's
map and is turned onto it (Procrustes), and its fine-tuning snapshots are one series, each started
from the previous, so the slider moves the same points instead of drawing a new map each time."""
from __future__ import annotations

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


def task_maps(result: TaskResult, method: str, parameter: float, seed: int, thumbnails: bool = False,
              student_mean: torch.Tensor | None = None, snapshot_every: int = 5, height: int = 380):
    """(teacher figure, student figure) of one task. The student's figure is the fine-tuned student when
    there is one, with a slider over its fine-tuning snapshots (unless the pictures are drawn)."""
    teacher = map_points(result, "teacher")
    teacher_xy = projection.project(teacher["embeddings"], method, parameter, seed)
    figures = [viz.embedding_figure(teacher_xy, teacher["labels"], teacher["role"], result.class_names,
                                    teacher["hover"], teacher["mistakes"], "teacher (ResNet18, 11M parameters)",
                                    teacher["thumbnails"] if thumbnails else None, pictures=teacher["thumbnails"],
                                    height=height)]
    key = "student+fine-tune" if "student+fine-tune" in result.embeddings else "student"
    final = map_points(result, key)
    series, names, wrong = [final["embeddings"]], ["fine-tuned" if key != "student" else "student"], [final["mistakes"]]
    if key != "student" and len(result.snapshots) > 1 and not thumbnails:
        steps = frame_steps(len(result.snapshots), snapshot_every)
        series, names, wrong = [], [], []
        for index in steps:
            embeddings = result.snapshots[index]
            answers = _answers(result, embeddings, student_mean)
            points = map_points(result, key, embeddings, answers)
            series.append(points["embeddings"])
            wrong.append(points["mistakes"])
            step = result.snapshot_steps[index] if index < len(result.snapshot_steps) else index * snapshot_every
            names.append("before fine-tuning" if step == 0 else f"after {step} steps")
    maps = projection.project_aligned(series, method, parameter, seed, reference=teacher_xy)
    title = "student (93k parameters)" + (", fine-tuned on your pictures" if key != "student" else "")
    figures.append(viz.embedding_figure(maps[-1], final["labels"], final["role"], result.class_names, final["hover"],
                                        wrong[-1], title, final["thumbnails"] if thumbnails else None,
                                        frames=list(zip(names, maps, wrong)) if len(maps) > 1 else (),
                                        pictures=final["thumbnails"], height=height))
    return figures[0], figures[1]
