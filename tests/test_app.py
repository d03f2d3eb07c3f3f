"""app.py: the page's handlers called directly (no server), as the browser would call them."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np
import pytest

import app
from pokedemo.task import CancelFlag, TaskResult


class NoProgress:
    def __call__(self, *args, **kwargs):
        pass


def run_random_task(seed=1, n_way=5, n_shot=5, n_query=3, steps=5, cancel=None, method="t-SNE", extra_queries=(),
                    photo=False):
    filled = app.random_task(seed, n_way, n_shot, n_query)
    names = [u["value"] for u in filled[:app.MAX_WAY]]
    galleries = filled[app.MAX_WAY:2 * app.MAX_WAY]
    queries = list(filled[2 * app.MAX_WAY]) + list(extra_queries)
    return app.run(n_way, n_shot, steps, False, photo, seed, *names, *galleries, queries, cancel or CancelFlag(), method,
                   10, 0, False, app.SessionFiles(), progress=NoProgress())


def test_the_shipped_models_load_and_the_gallery_has_every_novel_species():
    assert app.MODELS is not None, app.MODELS_PROBLEM
    assert len(app.GALLERY.species_names) == 151


def test_a_random_task_is_reproducible_from_its_seed():
    first, again, other = app.random_task(7, 5, 5, 3), app.random_task(7, 5, 5, 3), app.random_task(8, 5, 5, 3)
    assert first[:21] == again[:21] and first[:21] != other[:21]
    assert all(len(g) == 5 for g in first[app.MAX_WAY:app.MAX_WAY + 5])
    assert "seed **7**" in first[-1]


def test_running_a_random_task_gives_predictions_accuracy_and_both_maps():
    html, status, teacher_plot, student_plot, result, snapshot = run_random_task()
    assert isinstance(result, TaskResult) and set(result.probabilities) >= {"teacher", "student", "student+fine-tune"}
    assert html.count("<tr>") == 1 + len(result.query_truth) + 1
    for key in ("teacher", "student", "student+fine-tune"):
        assert result.accuracy(key) is not None
    assert teacher_plot.data and student_plot.data
    assert "Done in" in status


def test_a_bad_upload_is_named_and_the_rest_of_the_task_still_runs(tmp_path):
    bad = tmp_path / "homework.png"
    bad.write_text("this is not a picture")
    html, status, *_ = run_random_task(extra_queries=[str(bad)])
    assert "homework.png" in status and "<table" in html


def test_too_few_support_images_is_a_clear_error():
    filled = app.random_task(3, 5, 2, 2)
    names = [u["value"] for u in filled[:app.MAX_WAY]]
    with pytest.raises(gr.Error, match=r"class 1 .* has 2 usable image\(s\); a 5-shot task needs at least 5"):
        app.run(5, 5, 0, False, False, 0, *names, *filled[app.MAX_WAY:2 * app.MAX_WAY], filled[20], CancelFlag(), "PCA", 10, 0,
                False, app.SessionFiles(), progress=NoProgress())


def test_duplicate_class_names_are_refused():
    filled = app.random_task(3, 5, 5, 2)
    names = [u["value"] for u in filled[:app.MAX_WAY]]
    names[1] = names[0]
    with pytest.raises(gr.Error, match="both called"):
        app.run(5, 5, 0, False, False, 0, *names, *filled[app.MAX_WAY:2 * app.MAX_WAY], filled[20], CancelFlag(), "PCA", 10, 0,
                False, app.SessionFiles(), progress=NoProgress())


def test_a_cancelled_run_reports_it_and_leaves_the_shared_student_untouched():
    before = {k: v.clone() for k, v in app.MODELS.student.state_dict().items()}
    flag = CancelFlag()
    flag.set()  # pressed before fine-tuning starts: run() clears it, so set it again from the progress callback
    filled = app.random_task(2, 3, 2, 2)
    names = [u["value"] for u in filled[:app.MAX_WAY]]

    class CancelDuringFineTuning(NoProgress):
        def __call__(self, fraction, desc=""):
            if "fine-tuning" in desc:
                flag.set()

    _, status, *_ = app.run(3, 2, 50, False, False, 0, *names, *filled[app.MAX_WAY:2 * app.MAX_WAY], filled[20], flag, "PCA",
                            10, 0, False, app.SessionFiles(), progress=CancelDuringFineTuning())
    assert "cancelled" in status
    assert all((before[k] == v).all() for k, v in app.MODELS.student.state_dict().items())


def test_maps_redraw_with_every_method_and_replay_fine_tuning():
    *_, result, snapshot = run_random_task(n_way=3, n_shot=2, n_query=2, steps=10)
    assert len(result.snapshots) == 3  # before, after 5 and after 10 steps
    for method in ("t-SNE", "UMAP", "PCA"):
        teacher, student = app.draw_maps(result, method, 5, 0, True, step=0)
        assert teacher.data and "snapshot 0" in student.layout.title.text
        assert student.layout.images  # thumbnails drawn


def test_the_classify_api_returns_predictions_for_both_models(tmp_path):
    items = app.GALLERY.by_name
    paths, labels = [], []
    for name in ["Bulbasaur", "Charmander", "Squirtle"]:
        for item in items[name][:2]:
            paths.append(str(app.GALLERY.path(item.file)))
            labels.append(name)
    queries = [str(app.GALLERY.path(items["Squirtle"][-1].file))]
    out = app.classify_api(paths, ",".join(labels), queries, 3)
    assert out["classes"] == ["Bulbasaur", "Charmander", "Squirtle"]
    prediction = out["predictions"][0]
    assert set(prediction) == {"query", "teacher", "student", "student+fine-tune"}
    assert prediction["teacher"]["label"] in out["classes"] and 0 < prediction["student"]["confidence"] <= 1
    with pytest.raises(gr.Error, match="one name per image"):
        app.classify_api(paths, "a,b", queries, 0)


def test_gallery_paths_cannot_leave_the_gallery():
    for bad in ["../checkpoints/student.json", "/etc/passwd", "../../app.py", "index.csv/../../app.py"]:
        with pytest.raises(ValueError):
            app.GALLERY.path(bad)


def test_a_sessions_uploads_are_deleted_when_it_ends_but_gallery_files_stay(tmp_path):
    upload = tmp_path / "mine.png"
    upload.write_bytes(b"x")
    files = app.SessionFiles()
    gallery_file = str(app.GALLERY.path(app.GALLERY.items[0].file))
    files.add([str(upload), gallery_file])
    files.remove_all()
    assert not upload.exists() and Path(gallery_file).exists()


def test_photo_like_queries_are_rendered_seeded_and_shown_as_the_models_saw_them():
    *_, plain, _ = run_random_task(seed=4, steps=0)
    *_, photo, _ = run_random_task(seed=4, steps=0, photo=True)
    *_, again, _ = run_random_task(seed=4, steps=0, photo=True)
    n_support = len(plain.support_labels)
    plain_q, photo_q = plain.pictures[n_support:], photo.pictures[n_support:]
    assert [p.name for p in plain_q] == [p.name for p in photo_q] and [p.truth for p in photo_q] == [p.truth for p in plain_q]
    for before, after, same in zip(plain_q, photo_q, again.pictures[n_support:]):
        assert "photo-like" in after.source and (before.image != after.image).any()
        assert (after.image == same.image).all()
        # a gallery sprite sits on white; its photo-like picture is on a background: most of its border is not white
        border = np.concatenate([after.image[0], after.image[-1], after.image[:, 0], after.image[:, -1]])
        assert (border.min(axis=-1) < 240).mean() > 0.5
    # supports stay as they are
    assert all((a.image == b.image).all() for a, b in zip(plain.pictures[:n_support], photo.pictures[:n_support]))


def test_gallery_pictures_are_recognised_by_content_not_by_name(tmp_path):
    item = app.GALLERY.items[0]
    renamed = tmp_path / "my-photo.png"
    renamed.write_bytes(app.GALLERY.path(item.file).read_bytes())
    impostor = tmp_path / item.file
    impostor.write_bytes(app.GALLERY.path(app.GALLERY.items[-1].file).read_bytes()[:-1] + b"\0")
    assert app.GALLERY.identify(renamed) == item
    assert app.GALLERY.identify(impostor) is None
    assert not app.GALLERY.is_own_file(renamed) and app.GALLERY.is_own_file(app.GALLERY.path(item.file))
