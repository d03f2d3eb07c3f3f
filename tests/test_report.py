"""The library's page pieces without a page: task plans, answers, HTML and CSV, aligned maps."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from pokedemo import projection, report
from pokedemo.maps import frame_steps
from pokedemo.task import MAX_SHOT, NONE, Picture, Slot, TaskResult, plan_task


def _result(probabilities, labels, similarities=None):
    n_query, n_way = probabilities.shape
    pictures = [Picture(np.zeros((8, 8, 3), np.uint8), f"s{k}.png") for k in range(n_way)]
    pictures += [Picture(np.zeros((8, 8, 3), np.uint8), f"q{k}.png") for k in range(n_query)]
    result = TaskResult([f"class {k}" for k in range(n_way)], np.arange(n_way), labels, pictures, {},
                        {"teacher": probabilities, "student": probabilities[:, ::-1]})
    result.similarities = {"teacher": similarities if similarities is not None else np.ones(n_query),
                           "student": np.ones(n_query)}
    return result


def test_plan_task_leaves_empty_slots_out_names_unnamed_ones_and_keeps_truth_by_class_not_name():
    slots = [Slot("Sparky", [("a.png", "Pikachu", "front"), ("b.png", "Pikachu", "back")]),
             Slot("", [("c.png", "Onix", "front")], [("mine.png", None, "upload")]),
             Slot("named but empty", []),
             Slot("", [])]
    plan = plan_task(slots, [("q1.png", "Pikachu", "shiny"), ("q2.png", "Mew", "front"), ("q3.png", None, "upload")])
    assert plan.class_names == ["Sparky", "Onix"]
    assert [q[3] for q in plan.queries] == [0, NONE, None, 1]    # renamed Pikachu is still class 0; Mew: no class
    assert any("named but empty" in n and "left out" in n for n in plan.notes)
    many = Slot("many", [(f"{k}.png", None, "upload") for k in range(MAX_SHOT + 3)])
    plan = plan_task([many, slots[0]], [])
    assert len(plan.supports[0]) == MAX_SHOT and any(f"first {MAX_SHOT}" in n for n in plan.notes)
    with pytest.raises(ValueError, match="2 to 10 classes"):
        plan_task([slots[0], slots[2]], [])


def test_answers_accuracy_and_none_of_these():
    probabilities = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    result = _result(probabilities, [0, 0, None], similarities=np.array([0.9, 0.2, 0.9]))
    assert list(result.answers("teacher")) == [0, 1, 0]
    assert result.accuracy("teacher") == 0.5                      # the unknown query does not count
    assert list(result.answers("teacher", 0.5)) == [0, NONE, 0]
    assert result.accuracy("teacher", 0.5) == 0.5
    grid = report.predictions_grid(result, {"teacher": 0.5})
    assert grid.count("class='cell'") == 3 and "none of these" in grid and "class not known" in grid
    matrix = report.confusion(result, "teacher", 0.5)
    assert matrix.tolist() == [[1, 0, 1], [0, 0, 0]]              # the last column: none of these


def test_details_and_csv_hold_every_answer_with_its_top_three():
    probabilities = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]])
    result = _result(probabilities, [0, 1])
    details = report.details_html(result)
    assert details.count("top 3:") == 2 * 2 and details.count("class='confusion'") == 2
    assert "class 0 50%" in details and "wrong:" in details
    rows = list(csv.reader(io.StringIO(report.results_csv(result))))
    assert len(rows) == 3 and rows[1][2] == "class 0" and rows[1][3] == "class 0"
    result.class_names[2] = "=HYPERLINK(1)"                       # a visitor's class name, as a spreadsheet reads it
    assert "'=HYPERLINK(1)" in report.results_csv(result) and ",=HYPERLINK" not in report.results_csv(result)
    assert rows[2][3] == "class 2" and rows[2][5].startswith("class 2 0.7000")


def test_align_undoes_a_turn_a_mirror_and_a_scale():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(30, 2))
    turn = np.array([[0.0, -1.0], [-1.0, 0.0]])                    # a rotation with a reflection
    moved = 3 * reference @ turn + 5
    assert np.allclose(projection.align(moved, reference), reference, atol=1e-8)


def test_project_aligned_keeps_maps_of_near_identical_embeddings_near_each_other():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16)) * 5
    embeddings = np.repeat(centres, 8, axis=0) + rng.normal(size=(32, 16))
    nudged = embeddings + 0.01 * rng.normal(size=embeddings.shape)
    reference = projection.project(embeddings, "t-SNE", 5, 0)
    first, second = projection.project_aligned([embeddings, nudged], "t-SNE", 5, 0, reference=reference)
    spread = np.ptp(reference, axis=0).max()
    assert np.abs(second - first).max() < 0.2 * spread            # points move a little, the map stays
    assert np.abs(first - reference).mean() < 0.2 * spread


def test_frame_steps_keep_the_first_and_the_last_snapshot():
    assert frame_steps(3, 5) == [0, 1, 2]
    steps = frame_steps(21, 5)
    assert steps[0] == 0 and steps[-1] == 20 and len(steps) <= 6


def test_outsiders_count_only_when_none_of_these_can_be_answered():
    probabilities = np.array([[0.9, 0.1], [0.6, 0.4]])
    result = _result(probabilities, [0, NONE], similarities=np.array([0.9, 0.1]))
    assert result.accuracy("teacher") == 1.0                     # the outsider is not judged without a threshold
    assert result.accuracy("teacher", 0.5) == 1.0                # turned away: right
    assert result.accuracy("teacher", 0.05) == 0.5               # answered a class: wrong
    assert "not in the task" in report.predictions_grid(result, {"teacher": 0.5})


def test_balanced_batches_refuse_a_class_split_over_two_ranks():
    from pokedemo.data.stream import BalancedBatches

    with pytest.raises(ValueError, match="whole classes"):
        BalancedBatches(np.repeat(np.arange(8), 5), 3, 2, 1, world_size=2)


def test_a_student_map_started_from_the_teachers_follows_its_own_embeddings():
    rng = np.random.default_rng(1)
    teacher_labels, student_labels = np.repeat(np.arange(4), 8), np.tile(np.arange(4), 8)  # other groupings
    centres = rng.normal(size=(4, 16)) * 6
    teacher = projection.project(centres[teacher_labels] + rng.normal(size=(32, 16)), "t-SNE", 5, 0)
    student = projection.project_aligned([centres[student_labels] + rng.normal(size=(32, 16))], "t-SNE", 5, 0,
                                         reference=teacher)[0]
    distances = np.linalg.norm(student[:, None] - student[None], axis=-1) + np.eye(32) * 1e9
    nearest = distances.argsort(axis=1)[:, :3]
    assert (student_labels[nearest] == student_labels[:, None]).mean() > 0.9   # the student's own clusters
    assert (teacher_labels[nearest] == teacher_labels[:, None]).mean() < 0.4
