"""app.py: the page's handlers called directly (no server), as the browser would call them."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np
import pytest

import app
from pokedemo.task import MAX_STEPS, TaskResult


class NoProgress:
    def __call__(self, *args, **kwargs):
        pass


class FakeRequest:
    """What Gradio passes as gr.Request: the visitor's session."""

    def __init__(self, session_hash: str = "visitor"):
        self.session_hash = session_hash


def run_filled(filled, n_way, n_shot, steps, names=None, photo=False, seed=0, method="PCA", session="visitor",
               progress=None):
    names = names or [u["value"] for u in filled[:app.MAX_WAY]]
    phases = list(app.run(n_way, n_shot, steps, False, photo, seed, FakeRequest(session), progress or NoProgress(),
                          *names, *filled[app.MAX_WAY:2 * app.MAX_WAY], filled[2 * app.MAX_WAY], method, 10, 0,
                          False))
    return phases[-1]  # what the page shows at the end


def run_random_task(seed=1, n_way=5, n_shot=5, n_query=3, steps=5, method="t-SNE", extra_queries=(), photo=False,
                    session="visitor"):
    filled = list(app.random_task(seed, n_way, n_shot, n_query))
    filled[2 * app.MAX_WAY] = list(filled[2 * app.MAX_WAY]) + list(extra_queries)
    app.arm(FakeRequest(session))
    return run_filled(filled, n_way, n_shot, steps, photo=photo, seed=seed, method=method, session=session)


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
    with pytest.raises(gr.Error, match=r"class 1 .* has 2 usable image\(s\); a 5-shot task needs at least 5"):
        run_filled(filled, 5, 5, 0)


def test_duplicate_class_names_are_refused():
    filled = app.random_task(3, 5, 5, 2)
    names = [u["value"] for u in filled[:app.MAX_WAY]]
    names[1] = names[0]
    with pytest.raises(gr.Error, match="both called"):
        run_filled(filled, 5, 5, 0, names=names)


def test_a_cancelled_run_reports_it_and_leaves_the_shared_student_untouched():
    before = {k: v.clone() for k, v in app.MODELS.student.state_dict().items()}
    filled = app.random_task(2, 3, 2, 2)

    class CancelDuringFineTuning(NoProgress):
        def __call__(self, fraction, desc=""):
            if "step 2/" in desc:
                app.cancel(FakeRequest("canceller"))

    app.arm(FakeRequest("canceller"))
    _, status, _, student_map, result, snapshot = run_filled(filled, 3, 2, 50, session="canceller",
                                                            progress=CancelDuringFineTuning())
    assert "cancelled" in status and result.cancelled
    assert all((before[k] == v).all() for k, v in app.MODELS.student.state_dict().items())
    # the last snapshot, which every redraw shows, is the model of the predictions, not the untuned student
    import numpy as np
    assert np.allclose(result.snapshots[-1], result.embeddings["student+fine-tune"], atol=1e-5)
    assert not np.allclose(result.snapshots[-1], result.embeddings["student"], atol=1e-3)


def test_a_cancel_pressed_while_the_run_waits_in_the_queue_stops_it_before_any_work():
    filled = app.random_task(2, 3, 2, 2)
    app.arm(FakeRequest("queued"))
    app.cancel(FakeRequest("queued"))          # pressed while the run waits for a worker
    html, status, teacher_map, *_ = run_filled(filled, 3, 2, 50, session="queued")
    assert status == "Cancelled before it started." and html == "" and teacher_map is None


def test_two_sessions_at_once_keep_their_own_cancel_flags_and_results():
    import threading

    tasks = {"a": app.random_task(5, 3, 2, 2), "b": app.random_task(6, 4, 2, 2)}
    results = {}

    class CancelA(NoProgress):
        def __call__(self, fraction, desc=""):
            if "step 1/" in desc:
                app.cancel(FakeRequest("a"))

    def visit(session, n_way, progress):
        app.arm(FakeRequest(session))
        results[session] = run_filled(tasks[session], n_way, 2, 30, session=session, progress=progress)

    threads = [threading.Thread(target=visit, args=("a", 3, CancelA())),
               threading.Thread(target=visit, args=("b", 4, NoProgress()))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result_a, result_b = results["a"][4], results["b"][4]
    assert result_a.cancelled and not result_b.cancelled
    assert len(result_b.snapshots) == 7            # all 30 steps: before, then every 5 steps
    assert result_a.class_names == [u["value"] for u in tasks["a"][:3]]
    assert result_b.class_names == [u["value"] for u in tasks["b"][:4]]


def test_a_fixed_gallery_task_is_mostly_right_for_both_models():
    *_, result, _ = run_random_task(seed=0, n_way=5, n_shot=5, n_query=5, steps=5)
    assert len(result.query_truth) == 25
    for key in ("teacher", "student", "student+fine-tune"):
        assert result.accuracy(key) >= 0.8, (key, result.accuracy(key))


def test_fine_tuning_the_teacher_adds_its_column():
    filled = app.random_task(3, 3, 2, 2)
    names = [u["value"] for u in filled[:app.MAX_WAY]]
    app.arm(FakeRequest("teacher-tuner"))
    html, _, _, _, result, _ = list(app.run(3, 2, 4, True, False, 0, FakeRequest("teacher-tuner"), NoProgress(),
                                            *names, *filled[app.MAX_WAY:2 * app.MAX_WAY], filled[2 * app.MAX_WAY],
                                            "PCA", 10, 0, False))[-1]
    assert "teacher+fine-tune" in result.probabilities and "<th>teacher+fine-tune</th>" in html
    assert not np.allclose(result.embeddings["teacher+fine-tune"], result.embeddings["teacher"], atol=1e-4)


def test_the_api_with_maps_returns_a_point_per_picture_and_prototype():
    items = app.GALLERY.by_name
    paths = [str(app.GALLERY.path(i.file)) for name in ("Bulbasaur", "Charmander") for i in items[name][:2]]
    queries = [str(app.GALLERY.path(items["Charmander"][-1].file))]
    out = app.classify_api(paths, "Bulbasaur,Bulbasaur,Charmander,Charmander", queries, 0, True)
    assert len(out["maps"]["teacher"]) == len(out["maps"]["student"]) == 4 + 1 + 2


def test_limits_are_checked_before_any_picture_is_read(tmp_path):
    filled = list(app.random_task(2, 3, 2, 2))
    with pytest.raises(gr.Error, match=f"between 0 and {MAX_STEPS}, got 1000000"):
        run_filled(filled, 3, 2, 1_000_000)
    many = [str(tmp_path / f"q{k}.png") for k in range(51)]   # never created: the count alone is refused
    filled[2 * app.MAX_WAY] = many
    with pytest.raises(gr.Error, match="51 query images; at most 50"):
        run_filled(filled, 3, 2, 5)
    with pytest.raises(gr.Error, match="between 2 and 50"):
        app.draw_maps(run_random_task(n_way=3, n_shot=2, n_query=2, steps=0)[4], "t-SNE", 10_000, 0, False)


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
        for source in ("front", "back"):
            paths.append(str(app.GALLERY.path(next(i for i in items[name] if i.source == source).file)))
            labels.append(name)
    queries = [str(app.GALLERY.path("007-shiny-0.png"))]  # a source the supports do not show, recoloured
    out = app.classify_api(paths, ",".join(labels), queries, 3)
    assert out["classes"] == ["Bulbasaur", "Charmander", "Squirtle"]
    prediction = out["predictions"][0]
    assert set(prediction) == {"query", "teacher", "student", "student+fine-tune"}
    assert {prediction[k]["label"] for k in ("teacher", "student", "student+fine-tune")} == {"Squirtle"}
    assert 1 / 3 < prediction["student"]["confidence"] <= 1
    with pytest.raises(gr.Error, match="one name per image"):
        app.classify_api(paths, "a,b", queries, 0)


def test_gallery_paths_cannot_leave_the_gallery():
    for bad in ["../checkpoints/student.json", "/etc/passwd", "../../app.py", "index.csv/../../app.py"]:
        with pytest.raises(ValueError):
            app.GALLERY.path(bad)


def test_a_sessions_uploads_are_deleted_when_it_ends_but_shared_and_gallery_files_stay(tmp_path, monkeypatch):
    monkeypatch.setattr(app.SESSIONS, "grace_seconds", 0.0)
    mine, shared = tmp_path / "mine.png", tmp_path / "shared.png"
    mine.write_bytes(b"x"), shared.write_bytes(b"y")
    gallery_file = str(app.GALLERY.path(app.GALLERY.items[0].file))
    app.SESSIONS.add_files("leaving", [str(mine), str(shared), gallery_file])
    app.SESSIONS.add_files("staying", [str(shared)])           # the same upload, stored once by Gradio
    app.end_session(FakeRequest("leaving"))
    assert not mine.exists() and shared.exists() and Path(gallery_file).exists()
    app.end_session(FakeRequest("staying"))
    assert not shared.exists()


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


def test_a_file_uploaded_again_lately_waits_for_the_grace_period(tmp_path):
    import os

    from pokedemo.sessions import SessionRegistry

    registry = SessionRegistry(grace_seconds=60)
    upload = tmp_path / "again.png"
    upload.write_bytes(b"x")                      # just (re)uploaded: a queued request may still name it
    registry.add_files("s", [str(upload)])
    assert registry.end("s") == [] and upload.exists() and str(upload) in registry.pending
    old = upload.stat().st_mtime - 120
    os.utime(upload, (old, old))
    assert registry.sweep() == [str(upload)] and not upload.exists() and not registry.pending


def test_run_answers_first_then_adds_the_fine_tuned_student_then_the_maps():
    filled = app.random_task(9, 3, 2, 2)
    names = [u["value"] for u in filled[:app.MAX_WAY]]
    app.arm(FakeRequest("phases"))
    phases = list(app.run(3, 2, 5, False, False, 0, FakeRequest("phases"), NoProgress(), *names,
                          *filled[app.MAX_WAY:2 * app.MAX_WAY], filled[2 * app.MAX_WAY], "PCA", 10, 0, False))
    assert len(phases) == 3
    first, tuned, final = phases
    assert "<th>teacher</th>" in first[0] and "student+fine-tune" not in first[0] and first[2] is None
    assert "coming" in first[1] and "fine-tuned student" in first[1]
    assert "student+fine-tune" in tuned[0] and tuned[2] is None and "maps are coming" in tuned[1]
    assert final[2] is not None and final[3] is not None and "Done in" in final[1]


def test_a_run_queued_past_its_tabs_closing_is_cancelled_and_cannot_revive_the_session(tmp_path, monkeypatch):
    monkeypatch.setattr(app.SESSIONS, "grace_seconds", 0.0)
    late = tmp_path / "late.png"
    late.write_bytes(b"x")
    app.end_session(FakeRequest("gone"))               # the tab closed while its run waited in the queue
    assert app.SESSIONS.cancel_flag("gone").is_set()
    app.SESSIONS.add_files("gone", [str(late)])        # what the late run registers goes straight to deletion
    assert not late.exists() and "gone" not in app.SESSIONS.holders()


def test_a_gradio_cache_copy_of_a_gallery_picture_is_never_deleted(tmp_path, monkeypatch):
    monkeypatch.setattr(app.SESSIONS, "grace_seconds", 0.0)
    copy = tmp_path / "cache" / "025-front-0.png"      # how Gradio hands a picked gallery picture back
    copy.parent.mkdir()
    copy.write_bytes(app.GALLERY.path("025-front-0.png").read_bytes())
    app.SESSIONS.add_files("classmate", [str(copy)])
    app.end_session(FakeRequest("classmate"))
    assert copy.exists()


def test_gallery_queries_added_to_a_random_task_never_repeat_its_supports():
    filled = app.random_task(2, 5, 5, 1)
    supports = [p for g in filled[app.MAX_WAY:2 * app.MAX_WAY] for p in g]
    name = filled[0]["value"]
    queries, _ = app.add_query_species(name, [], *filled[app.MAX_WAY:2 * app.MAX_WAY])
    assert queries and not set(queries) & set(supports)
