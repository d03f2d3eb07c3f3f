"""What the page shows of a task's answers, as HTML and CSV: a compact grid of the test pictures with each
model's answer, the accuracy line, and the details (every answer with its top 3, per-class accuracy, a
confusion matrix per model). Arrays and TaskResults in, strings out; no UI library."""
from __future__ import annotations

import csv
import io
import re
from html import escape
from pathlib import Path

import numpy as np

from .task import MODEL_LABELS, NONE, TaskResult

NONE_TEXT = "none of these"
OUTSIDE_TEXT = "not in the task"   # a picture of a species no class shows
SHORT = {"teacher": "T", "student": "S", "student+fine-tune": "S+ft", "teacher+fine-tune": "T+ft"}
LEGEND_HTML = ("<div class='map-legend'><b>On the maps:</b> each colour is a class; "
               "<span class='key support'></span> big circle: a picture the model learned from (support); "
               "<span class='key query'></span> small dot: a test picture; "
               "<span class='key prototype'>&#9733;</span> star: the class's average (prototype); "
               "<span class='key mistake'></span> red ring: a wrong answer. Hover a point to see its picture.</div>")


def models_of(result: TaskResult) -> list[str]:
    return [k for k in MODEL_LABELS if k in result.probabilities]


def _truth_text(result: TaskResult, truth: int | None, html: bool = True) -> str:
    text = "class not known" if truth is None else OUTSIDE_TEXT if truth == NONE else result.class_names[truth]
    return escape(text) if html else text


def _answer_text(result: TaskResult, k: int) -> str:
    return NONE_TEXT if k == NONE else result.class_names[k]


def accuracy_line(result: TaskResult, thresholds: dict[str, float | None] | None = None) -> str:
    """One sentence: each model's accuracy on the test pictures whose class is known."""
    thresholds = thresholds or {}
    known = sum(result.judged(next(iter(thresholds.values()), None)))  # judged depends only on a threshold being set
    if not known:
        return ("<p class='accuracy'>No test picture has a known class, so there is no accuracy: add test pictures "
                "to a class, or gallery pictures of the task's species.</p>")
    parts = [f"{MODEL_LABELS[k]} <b>{result.accuracy(k, thresholds.get(k)):.0%}</b>" for k in models_of(result)]
    return f"<p class='accuracy'>Right on the {known} test pictures whose answer is known: {', '.join(parts)}.</p>"


def predictions_grid(result: TaskResult, thresholds: dict[str, float | None] | None = None) -> str:
    """The query thumbnails in a wrapping grid, each with every model's answer (wrong ones in red and marked
    "wrong", in words as well as colour)."""
    thresholds = thresholds or {}
    models = models_of(result)
    answers = {k: result.answers(k, thresholds.get(k)) for k in models}
    judged = {k: result.judged(thresholds.get(k)) for k in models}
    cells = []
    for i, picture in enumerate(result.pictures[result.n_support:]):
        truth = result.query_labels[i]
        lines = []
        for key in models:
            k = int(answers[key][i])
            wrong = judged[key][i] and k != truth
            confidence = "" if k == NONE else f" {result.probabilities[key][i, k]:.0%}"
            lines.append(f"<div class='answer {'mistake' if wrong else 'ok'}' title='{MODEL_LABELS[key]}'>"
                         f"<span class='who'>{SHORT[key]}</span> {'<b>wrong:</b> ' if wrong else ''}"
                         f"{escape(_answer_text(result, k))}{confidence}</div>")
        true_text = _truth_text(result, truth)
        cells.append(f"<div class='cell'><img src='{result.picture_uri(result.n_support + i, 56)}' alt='{escape(picture.name)}'"
                     f" title='{escape(picture.name)} ({escape(picture.source)})'/><div class='truth'>{true_text}</div>"
                     f"{''.join(lines)}</div>")
    key = " ".join(f"<b>{SHORT[k]}</b> {MODEL_LABELS[k]}" for k in models)
    return (accuracy_line(result, thresholds) + f"<div class='grid-key'>{key}</div>"
            f"<div class='predictions-grid'>{''.join(cells)}</div>")


def _top3(result: TaskResult, key: str, i: int) -> str:
    order = np.argsort(-result.probabilities[key][i])[:3]
    return ", ".join(f"{escape(result.class_names[k])} {result.probabilities[key][i, k]:.0%}" for k in order)


def confusion(result: TaskResult, key: str, threshold: float | None = None) -> np.ndarray:
    """(n_way, n_way + 1) counts: rows the true class, columns the answer (last column: none of these)."""
    n_way = len(result.class_names)
    matrix = np.zeros((n_way, n_way + 1), dtype=np.int64)
    for truth, answer in zip(result.query_labels, result.answers(key, threshold)):
        if truth is not None and truth != NONE:
            matrix[truth, n_way if answer == NONE else answer] += 1
    return matrix


def details_html(result: TaskResult, thresholds: dict[str, float | None] | None = None) -> str:
    """Every answer with its top 3, then per model: per-class accuracy and the confusion matrix."""
    thresholds = thresholds or {}
    models = models_of(result)
    names = [escape(n) for n in result.class_names]
    answers = {k: result.answers(k, thresholds.get(k)) for k in models}
    judged = {k: result.judged(thresholds.get(k)) for k in models}
    rows = []
    for i, picture in enumerate(result.pictures[result.n_support:]):
        truth = result.query_labels[i]
        cells = [f"<td><img src='{result.picture_uri(result.n_support + i, 40)}' alt=''/> {escape(picture.name)}</td>",
                 f"<td>{_truth_text(result, truth)}</td>"]
        for key in models:
            k = int(answers[key][i])
            wrong = judged[key][i] and k != truth
            cells.append(f"<td class='{'mistake' if wrong else 'ok'}'>{'<b>wrong:</b> ' if wrong else ''}"
                         f"{escape(_answer_text(result, k))}<br><small>top 3: {_top3(result, key, i)}</small></td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{MODEL_LABELS[k]}</th>" for k in models)
    parts = [f"<div class='scroll'><table class='details'><tr><th>test picture</th><th>true class</th>{head}</tr>"
             f"{''.join(rows)}</table></div>"]
    for key in models:
        matrix = confusion(result, key, thresholds.get(key))
        if not matrix.sum():
            continue
        per_class = [f"{names[c]} {matrix[c, c] / matrix[c].sum():.0%} ({matrix[c, c]}/{matrix[c].sum()})"
                     for c in range(len(names)) if matrix[c].sum()]
        header = "".join(f"<th>{n}</th>" for n in names) + f"<th>{NONE_TEXT}</th>"
        body = "".join(f"<tr><th>{names[c]}</th>" + "".join(
            f"<td class='{'diag' if c == j else ('off' if matrix[c, j] else '')}'>{matrix[c, j]}</td>"
            for j in range(len(names) + 1)) + "</tr>" for c in range(len(names)))
        parts.append(f"<h4>{MODEL_LABELS[key]}</h4><p>Per-class accuracy: {'; '.join(per_class)}.</p>"
                     f"<div class='scroll'><table class='confusion'><tr><th>true \\ answer</th>{header}</tr>{body}"
                     f"</table></div>")
    return "".join(parts)


def results_csv(result: TaskResult, thresholds: dict[str, float | None] | None = None) -> str:
    """One row per test picture: file, source, true class, then per model its answer, confidence and top 3."""
    thresholds = thresholds or {}
    models = models_of(result)
    out = io.StringIO()
    writer = csv.writer(out)
    answers = {k: result.answers(k, thresholds.get(k)) for k in models}
    writer.writerow(["picture", "source", "true class"] + [f"{MODEL_LABELS[k]} {c}" for k in models
                                                           for c in ("answer", "confidence", "top 3")])
    for i, picture in enumerate(result.pictures[result.n_support:]):
        truth = result.query_labels[i]
        row = [picture.name, picture.source, "" if truth is None else _truth_text(result, truth, html=False)]
        for key in models:
            k = int(answers[key][i])
            order = np.argsort(-result.probabilities[key][i])[:3]
            row += [_answer_text(result, k), f"{result.probabilities[key][i].max():.4f}",
                    "; ".join(f"{result.class_names[j]} {result.probabilities[key][i, j]:.4f}" for j in order)]
        writer.writerow([_cell(value) for value in row])
    return out.getvalue()


def _cell(value: str) -> str:
    """A CSV cell a spreadsheet shows as text: visitors' names starting with = + - @ are not run as formulas."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def single_answer(class_names: list[str], probabilities: np.ndarray, similarity: float,
                  threshold: float | None = None) -> str:
    """One picture's answer (the webcam's) in large type, with its top 3."""
    order = np.argsort(-probabilities)[:3]
    top = ", ".join(f"{escape(class_names[k])} {probabilities[k]:.0%}" for k in order)
    answer = NONE_TEXT if threshold is not None and similarity < threshold else class_names[order[0]]
    return f"<p class='webcam-answer'><b>{escape(answer)}</b></p><p>top 3: {top}</p>"


def markdown_sections(text: str, folder: Path) -> list[tuple[str, str]]:
    """A markdown page cut at its pictures, for a page that shows pictures as components: [("text", markdown) |
    ("image", path)], picture paths resolved from `folder`. Links to other local .md pages keep their words only
    (the page shows those pages itself)."""
    sections, position = [], 0
    for match in re.finditer(r"^!\[([^\]]*)\]\(([^)]+)\)\s*$", text, flags=re.MULTILINE):
        sections.append(("text", text[position:match.start()]))
        sections.append(("image", str((folder / match.group(2)).resolve())))
        position = match.end()
    sections.append(("text", text[position:]))
    return [(kind, re.sub(r"\[([^\]]+)\]\((?!https?:)[^)]+\.md\)", r"\1", value) if kind == "text" else value)
            for kind, value in sections if value.strip()]
