"""app.py: the page's handlers called directly (no server), as the browser would call them."""
from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

import app
from pokedemo import projection
from pokedemo.checkpoint import checkpoint_identity
from pokedemo.config import GALLERY_EMBEDDINGS, SHIPPED_CHECKPOINTS
from pokedemo.images import load_image, to_model_image
from pokedemo.models import to_tensor
from pokedemo.task import MAX_STEPS, NONE, EmbeddingCache, TaskResult, map_points


class NoProgress:
    def __call__(self, *args, **kwargs):
        pass


class FakeRequest:
    """What Gradio passes as gr.Request: the visitor's session."""

    def __init__(self, session_hash: str = "visitor"):
        self.session_hash = session_hash


QUERIES = 3 * app.MAX_WAY  # random_task's outputs: names, support galleries, test galleries, queries, status


def run_phases(filled, n_way, steps, names=None, photo=False, seed=0, method="PCA", session="visitor",
               progress=None, tune_teacher=False, use_none=False, tests=None):
    names = names or [u["value"] for u in filled[:app.MAX_WAY]]
    tests = tests or filled[2 * app.MAX_WAY:QUERIES]
    request, progress = FakeRequest(session), progress or NoProgress()
    *first, result, details, run_info = app.answer(
        n_way, steps, tune_teacher, photo, seed, use_none, request, progress, *names,
        *filled[app.MAX_WAY:2 * app.MAX_WAY], *tests, filled[QUERIES], method, 10, 0, False)
    # the page's chain: the first answers, then (after them) the fine-tuned student and the maps
    return [(*first, result, details)] + list(app.finish_run(result, run_info, use_none, method, 10, 0, False, request,
                                                              progress))


def run_filled(filled, n_way, steps, **options):
    """What the page shows at the end: each phase's outputs over the previous ones, but where one is left as it is
    (`gr.skip()`)."""
    shown = None
    for phase in run_phases(filled, n_way, steps, **options):
        shown = [old if new == gr.skip() else new for old, new in zip(shown or phase, phase)]
    return tuple(shown)


def run_random_task(seed=1, n_way=5, n_shot=5, n_query=3, steps=5, method="t-SNE", extra_queries=(), photo=False,
                    session="visitor"):
    filled = list(app.random_task(seed, n_way, n_shot, n_query))
    filled[QUERIES] = list(filled[QUERIES]) + list(extra_queries)
    app.arm(FakeRequest(session))
    return run_filled(filled, n_way, steps, photo=photo, seed=seed, method=method, session=session)


def test_the_shipped_models_load_and_the_gallery_has_every_novel_species():
    assert app.MODELS is not None, app.MODELS_PROBLEM
    assert len(app.GALLERY.species_names) == 151


def test_a_random_task_is_reproducible_from_its_seed():
    first, again, other = app.random_task(7, 5, 5, 3), app.random_task(7, 5, 5, 3), app.random_task(8, 5, 5, 3)
    assert first[:-1] == again[:-1] and first[:-1] != other[:-1]
    assert all(len(g) == 5 for g in first[app.MAX_WAY:app.MAX_WAY + 5])
    assert "Task 7 is ready" in first[-1]


def test_running_a_random_task_gives_predictions_accuracy_and_both_maps():
    html, status, teacher_plot, student_plot, result, details = run_random_task()
    assert isinstance(result, TaskResult) and set(result.probabilities) >= {"teacher", "student", "student+fine-tune"}
    assert html.count("class='cell'") == len(result.query_labels) == 15
    assert details.count("<tr>") >= 1 + 15 and details.count("class='confusion'") == 3
    for key in ("teacher", "student", "student+fine-tune"):
        assert result.accuracy(key) is not None
    assert teacher_plot.data and student_plot.data
    assert "Done in" in status


def test_a_bad_upload_is_named_and_the_rest_of_the_task_still_runs(tmp_path):
    bad = tmp_path / "homework.png"
    bad.write_text("this is not a picture")
    html, status, *_ = run_random_task(extra_queries=[str(bad)])
    assert "homework.png" in status and "predictions-grid" in html


def test_classes_may_hold_different_numbers_of_pictures_and_empty_slots_are_left_out():
    filled = list(app.random_task(3, 5, 2, 2))
    filled[app.MAX_WAY] = filled[app.MAX_WAY][:1]                # class 1 keeps one picture
    filled[app.MAX_WAY + 4] = []                                 # class 5 has none
    names = [u["value"] for u in filled[:app.MAX_WAY]]
    html, status, _, _, result, _ = run_filled(filled, 5, 0, names=names)
    assert len(result.class_names) == 4 and names[4] not in result.class_names
    assert list(np.bincount(result.support_labels)) == [1, 2, 2, 2]
    assert "left out" in status


def test_filling_two_of_five_slots_gives_a_two_class_task():
    filled = list(app.random_task(3, 2, 3, 2))
    names = [u["value"] for u in filled[:app.MAX_WAY]]
    *_, result, _ = run_filled(filled, 5, 0, names=names)
    assert result.class_names == names[:2]


def test_duplicate_class_names_are_refused():
    filled = app.random_task(3, 5, 5, 2)
    names = [u["value"] for u in filled[:app.MAX_WAY]]
    names[1] = names[0]
    with pytest.raises(gr.Error, match="both called"):
        run_filled(filled, 5, 0, names=names)


def test_a_cancelled_run_reports_it_and_leaves_the_shared_student_untouched():
    before = {k: v.clone() for k, v in app.MODELS.student.state_dict().items()}
    filled = app.random_task(2, 3, 2, 2)

    class CancelDuringFineTuning(NoProgress):
        def __call__(self, fraction, desc=""):
            if "step 2/" in desc:
                app.cancel(FakeRequest("canceller"))

    app.arm(FakeRequest("canceller"))
    _, status, _, student_map, result, _ = run_filled(filled, 3, 50, session="canceller",
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
    html, status, teacher_map, *_ = run_filled(filled, 3, 50, session="queued")
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
        results[session] = run_filled(tasks[session], n_way, 30, session=session, progress=progress)

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
    assert len(result.query_labels) == 25 and None not in result.query_labels
    for key in ("teacher", "student", "student+fine-tune"):
        assert result.accuracy(key) >= 0.8, (key, result.accuracy(key))


def test_fine_tuning_the_teacher_adds_its_column():
    filled = app.random_task(3, 3, 2, 2)
    names = [u["value"] for u in filled[:app.MAX_WAY]]
    app.arm(FakeRequest("teacher-tuner"))
    html, _, _, _, result, details = run_filled(filled, 3, 4, names=names, session="teacher-tuner", tune_teacher=True)
    assert "teacher+fine-tune" in result.probabilities and "<th>fine-tuned teacher</th>" in details
    assert "T+ft" in html
    assert not np.allclose(result.embeddings["teacher+fine-tune"], result.embeddings["teacher"], atol=1e-4)


def test_the_api_with_maps_returns_a_point_per_picture_and_prototype():
    items = app.GALLERY.by_name
    paths = [str(app.GALLERY.path(i.file)) for name in ("Bulbasaur", "Charmander") for i in items[name][:2]]
    queries = [str(app.GALLERY.path(items["Charmander"][-1].file))]
    out = app.classify_api(paths, "Bulbasaur,Charmander,Bulbasaur,Charmander", queries, 2, True)
    assert len(out["maps"]["teacher"]) == len(out["maps"]["student"]) == len(out["maps"]["points"]) == 4 + 1 + 2
    names = [Path(p).name for p in paths]
    assert out["maps"]["points"] == [  # the supports grouped by class, the query, the prototypes
        {"role": "support", "name": names[0], "class": "Bulbasaur"}, {"role": "support", "name": names[2], "class": "Bulbasaur"},
        {"role": "support", "name": names[1], "class": "Charmander"}, {"role": "support", "name": names[3], "class": "Charmander"},
        {"role": "query", "name": Path(queries[0]).name},
        {"role": "prototype", "class": "Bulbasaur"}, {"role": "prototype", "class": "Charmander"}]


def test_limits_are_checked_before_any_picture_is_read(tmp_path):
    filled = list(app.random_task(2, 3, 2, 2))
    with pytest.raises(gr.Error, match=f"between 0 and {MAX_STEPS}, got 1000000"):
        run_filled(filled, 3, 1_000_000)
    many = [str(tmp_path / f"q{k}.png") for k in range(51)]   # never created: the count alone is refused
    filled[QUERIES] = many
    with pytest.raises(gr.Error, match="51 query images; at most 50"):
        run_filled(filled, 3, 5)
    filled[QUERIES] = many[:30]                                 # slot test pictures count too
    filled[2 * app.MAX_WAY] = many[30:]
    with pytest.raises(gr.Error, match="51 query images; at most 50"):
        run_filled(filled, 3, 5)
    with pytest.raises(gr.Error, match="between 2 and 50"):
        app.draw_maps(run_random_task(n_way=3, n_shot=2, n_query=2, steps=0)[4], "t-SNE", 10_000, 0, False)


def test_maps_redraw_with_every_method_and_replay_fine_tuning():
    *_, result, _ = run_random_task(n_way=3, n_shot=2, n_query=2, steps=10)
    assert len(result.snapshots) == 3  # before, after 5 and after 10 steps
    for method in ("t-SNE", "UMAP", "PCA"):
        teacher, student = app.draw_maps(result, method, 5, 0, False)
        frames = student.layout.meta["frames"]
        assert [f["name"] for f in frames] == ["before fine-tuning", "after 5 steps", "after 10 steps"]
        assert len(frames[0]["data"]) == len(student.data)      # one entry per trace: the same points move
        teacher, student = app.draw_maps(result, method, 5, 0, True)
        assert teacher.layout.images and student.layout.images  # thumbnails drawn, no slider


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
    phases = run_phases(filled, 3, 5, names=names, session="phases")
    assert len(phases) == 3
    first, tuned, final = phases
    assert "teacher" in first[0] and "S+ft" not in first[0] and first[2] is None
    assert "coming" in first[1] and "fine-tuned student" in first[1]
    assert "S+ft" in tuned[0] and tuned[2] is None and "maps are coming" in tuned[1]
    assert final[2] is not None and final[3] is not None and "Done in" in final[1]
    # the maps' phase leaves the fine-tuned grid, the details and the result on the page, not sent again
    assert final[0] == final[4] == final[5] == gr.skip() and tuned[4].embeddings.keys() >= {"student+fine-tune"}


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


def test_the_first_visit_has_a_ready_example_task():
    filled = app.example_task()
    assert all(u["value"] for u in filled[:5]) and all(len(g) == 5 for g in filled[app.MAX_WAY:app.MAX_WAY + 5])
    assert len(filled[QUERIES]) == 25 and "Press **Run**" in filled[-1]


def test_a_renamed_class_keeps_its_truth_and_a_slots_own_test_pictures_count(tmp_path):
    from PIL import Image

    filled = list(app.random_task(5, 3, 3, 2))
    names = ["my first class", "B", "C"]
    mine = tmp_path / "my-drawing.png"          # not a gallery picture: its class is known only from its slot
    picture = np.asarray(Image.open(filled[app.MAX_WAY + 1][0]).convert("RGB"))
    Image.fromarray(np.ascontiguousarray(picture[::-1])).save(mine)  # flipped upside down: new bytes
    tests = [[] for _ in range(app.MAX_WAY)]
    tests[1] = [str(mine)]
    *_, result, details = run_filled(filled, 3, 0, names=names + [""] * (app.MAX_WAY - 3), tests=tests)
    assert result.class_names == names
    assert None not in result.query_labels and result.query_labels[-1] == 1
    assert result.accuracy("teacher") is not None and "my-drawing.png" in details


def test_none_of_these_turns_away_species_outside_the_task():
    filled = list(app.random_task(11, 5, 5, 1))
    names = [u["value"] for u in filled[:app.MAX_WAY]]
    outsiders = [n for n in app.GALLERY.species_names if n not in names][:8]
    filled[QUERIES] = [str(app.GALLERY.path(app.GALLERY.by_name[n][0].file)) for n in outsiders]
    *_, result, _ = run_filled(filled, 5, 0, names=names)
    assert result.query_labels == [NONE] * 8                     # their species is in no slot
    plain, _ = app.rescore(result, False)
    turned_away, details = app.rescore(result, True)
    assert "none of these" not in plain and result.accuracy("teacher") is None   # not judged without the switch
    limits = app.thresholds(True)
    assert limits["teacher"] and limits["student"]                # chosen on the val species, kept in the cards
    rejected = (result.answers("teacher", limits["teacher"]) == NONE).sum()
    assert rejected >= 4 and result.accuracy("teacher", limits["teacher"]) == rejected / 8   # right when turned away
    assert "none of these" in turned_away and "not in the task" in turned_away


def test_the_answers_and_the_fine_tuned_student_can_be_downloaded():
    import csv

    from pokedemo.checkpoint import load_checkpoint

    *_, result, _ = run_random_task(seed=3, n_way=3, n_shot=2, n_query=2, steps=5)
    rows = list(csv.reader(open(app.download_results(result, False)[0], encoding="utf-8")))
    assert len(rows) == 1 + 6 and rows[0][:3] == ["picture", "source", "true class"]
    assert all(row[3] in result.class_names for row in rows[1:])
    weights, card_file, onnx_file = app.download_model(result)
    model, card = load_checkpoint(weights)
    import onnx
    onnx.checker.check_model(onnx_file)
    graph = onnx.load(onnx_file).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param       # any batch size
    assert card["fine_tuned_on"]["classes"] == result.class_names and len(card["fine_tuned_on"]["prototypes"]) == 3
    images = np.stack([p.image for p in result.pictures])
    with torch.inference_mode():
        again = model.embed(to_tensor(images)).numpy()
    assert np.allclose(again, result.embeddings["student+fine-tune"], atol=1e-4)
    # its prototypes are the download's own embeddings of the supports, centred, averaged per class
    from pokedemo.checkpoint import base_mean
    from pokedemo.fewshot import centre, compute_prototypes
    supports = torch.from_numpy(again[:result.n_support])
    expected = compute_prototypes(centre(supports, base_mean(card)), torch.from_numpy(result.support_labels))
    assert np.allclose(card["fine_tuned_on"]["prototypes"], expected.numpy(), atol=1e-4)
    with pytest.raises(gr.Error, match="Run a task first"):
        app.download_results(None, False)


def test_the_webcam_answers_with_the_visitors_fine_tuned_student():
    from PIL import Image

    assert "Run a task first" in app.classify_webcam(np.zeros((120, 160, 3), np.uint8), None, False)
    *_, result, _ = run_random_task(seed=3, n_way=3, n_shot=2, n_query=2, steps=5)
    frame = np.asarray(Image.open(result.pictures[0].path).convert("RGB").resize((160, 160)))
    answer = app.classify_webcam(frame, result, False)
    assert result.class_names[result.support_labels[0]] in answer.split("</b>")[0]


def test_photo_queries_meet_photo_ready_prototypes_and_sprite_queries_do_not():
    *_, plain, _ = run_random_task(seed=4, steps=0)
    *_, photo, _ = run_random_task(seed=4, steps=0, photo=True)
    assert plain.view_images is None and not plain.photo_queries.any()
    assert photo.photo_queries.all() and photo.view_images.shape == (4, photo.n_support, 64, 64, 3)
    # each view is the support rendered on a (training) background: its border is no longer white
    border = photo.view_images[:, :, 0].reshape(-1, 3)
    assert (border.min(axis=-1) < 240).mean() > 0.5
    assert [q.label for q in photo.pictures[photo.n_support:]] == photo.query_labels == plain.query_labels


def test_fine_tuning_a_photo_task_sees_the_supports_photo_views_only_when_its_config_asks(monkeypatch):
    import functools

    from pokedemo import task
    from pokedemo.fewshot import FineTuneConfig

    *_, photo, _ = run_random_task(seed=4, steps=0, photo=True)
    seen, fine_tune = [], task.fine_tune

    def watched(*args, support_views=None, **kwargs):
        seen.append(support_views)
        return fine_tune(*args, support_views=support_views, **kwargs)

    monkeypatch.setattr(task, "fine_tune", watched)
    task.refine(app.MODELS, photo, 2)                                  # the shipped config: no photo copies
    monkeypatch.setattr(task, "FineTuneConfig", functools.partial(FineTuneConfig, photo_copies=1))
    tuned = task.refine(app.MODELS, photo, 2)
    assert seen[0] is None and seen[1].shape == (4, photo.n_support, 3, 64, 64)
    assert torch.equal(seen[1][2, 1], to_tensor(photo.view_images[2, 1:2])[0])   # view 2 of support 1
    assert tuned.probabilities["student+fine-tune"].shape == photo.probabilities["student"].shape


def test_the_later_phases_run_below_the_first_answers_priority_and_see_the_request_context():
    import contextvars
    import os
    import sys
    import threading

    from pokedemo.priority import background_pool, submit_in_context

    marker = contextvars.ContextVar("marker", default="unset")
    marker.set("this request")
    pool = background_pool(1)
    try:
        nice, seen = submit_in_context(pool, lambda: (os.getpriority(os.PRIO_PROCESS, threading.get_native_id()),
                                                      marker.get())).result()
    finally:
        pool.shutdown()
    assert seen == "this request"                       # e.g. the run's progress bar
    if sys.platform.startswith("linux") and os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < 19:
        assert nice > os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_start_up_work_that_can_wait_waits_until_the_visitors_work_is_done():
    """`wait_until_quiet` (before numba compiles UMAP) does not return while the process keeps a core busy."""
    import threading
    import time

    from pokedemo.priority import wait_until_quiet

    def spin(until: float) -> None:   # a visitor's work: one core busy
        while time.monotonic() < until:
            pass

    busy = threading.Thread(target=spin, args=(time.monotonic() + 1.5,))
    busy.start()
    waited = wait_until_quiet(window=0.3, limit=60)
    assert not busy.is_alive() and waited < 60         # it returned once the work was over, not at its limit
    busy.join()


def test_a_run_pressed_again_before_its_refinement_is_refined_once_with_the_steps_it_was_run_with():
    filled = app.random_task(4, 3, 2, 2)
    names = [u["value"] for u in filled[:app.MAX_WAY]]
    request = FakeRequest("twice")
    app.arm(request)
    grid, *_, result, _, run_info = app.answer(3, 0, False, False, 0, False, request, NoProgress(), *names,
                                               *filled[app.MAX_WAY:2 * app.MAX_WAY],
                                               *filled[2 * app.MAX_WAY:QUERIES], filled[QUERIES], "PCA", 10, 0, False)
    first = list(app.finish_run(result, run_info, False, "PCA", 10, 0, False, request, NoProgress()))
    again = list(app.finish_run(result, run_info, False, "PCA", 10, 0, False, request, NoProgress()))
    assert len(first) == 1 and "Done in" in first[0][1] and again == []   # 0 steps: only the maps, once
    assert "S+ft" not in grid and first[0][0] == gr.skip()   # the first answers' grid stays: no fine-tuned column


def test_none_of_these_is_off_unless_both_cards_hold_their_threshold(monkeypatch):
    assert set(app.thresholds(True)) == {"teacher", "teacher+fine-tune", "student", "student+fine-tune"}
    assert app.thresholds(False) == {}
    card = {k: v for k, v in app.MODELS.student_card.items() if k != "none_threshold"}
    monkeypatch.setattr(app, "MODELS", replace(app.MODELS, student_card=card))
    assert app.thresholds(True) == {} and "no thresholds" in app.none_info()


class CountingModel(torch.nn.Module):
    """A shared model that counts the pictures it embeds."""

    def __init__(self, model):
        super().__init__()
        self.model, self.embedded = model, 0

    def embed(self, images, **extras):
        self.embedded += len(images)
        return self.model.embed(images, **extras)


def test_known_gallery_pictures_are_looked_up_and_a_visitors_pictures_are_embedded_and_never_kept():
    gallery = [(app.GALLERY.path(item.file), None, "gallery") for item in app.GALLERY.items[:6]]
    pictures, _ = app.read_pictures(gallery, app.MODELS.image_size)
    known = np.stack([p.image for p in pictures])
    student = CountingModel(app.MODELS.student)
    cache = EmbeddingCache()
    cache.fill("student", student, known[:4], batch=3)
    assert len(cache) == 4 and student.embedded == 4
    unknown = np.random.default_rng(0).integers(0, 256, (2, *known.shape[1:]), dtype=np.uint8)  # a visitor's
    images = np.concatenate([known, unknown])
    student.embedded = 0
    embeddings = cache.embed("student", student, images)
    assert student.embedded == 4 and len(cache) == 4  # 2 gallery pictures not filled + 2 uploads; none kept
    with torch.inference_mode():
        direct = app.MODELS.student.embed(to_tensor(images))
    assert torch.allclose(embeddings, direct, atol=1e-5)
    other = CountingModel(app.MODELS.student)  # another model (a fine-tuned copy, say) finds nothing stored
    cache.embed("student", other, known[:4])
    assert other.embedded == 4
    assert cache.embed("teacher", CountingModel(app.MODELS.teacher), known).shape == (6, 512)  # not filled: embeds


def read_random_task(seed, n_way, n_shot, n_query):
    """(plan, support pictures per class, query pictures) of the page's random task `seed`, read as Run reads it."""
    filled = app.random_task(seed, n_way, n_shot, n_query)
    plan = app.plan_task(app._slots(n_way, [u["value"] for u in filled[:app.MAX_WAY]], filled[app.MAX_WAY:],
                                    [[]] * app.MAX_WAY), [(p, *app._truth(p)) for p in filled[QUERIES]])
    supports, queries, _ = app._read_task(plan.supports, plan.queries)
    return plan, supports, queries


def cached_models():
    """The page's models counting what they embed, with the shipped gallery embeddings bound to them."""
    teacher, student = CountingModel(app.MODELS.teacher), CountingModel(app.MODELS.student)
    models = replace(app.MODELS, teacher=teacher, student=student, cache=EmbeddingCache())
    assert models.cache.load(GALLERY_EMBEDDINGS, checkpoint_identity(*SHIPPED_CHECKPOINTS),
                             {"teacher": teacher, "student": student})
    return models


def test_a_gallery_task_is_answered_from_the_shipped_embeddings_and_an_upload_task_is_embedded_and_not_kept(tmp_path):
    models = cached_models()
    plan, supports, queries = read_random_task(4, 3, 3, 2)
    looked_up = app.first_answer(models, plan.class_names, supports, queries)
    assert models.teacher.embedded == models.student.embedded == 0
    direct = app.first_answer(app.MODELS, plan.class_names, supports, queries)  # the app's models, no file
    for key in ("teacher", "student"):
        assert np.allclose(looked_up.embeddings[key], direct.embeddings[key], atol=1e-4)
        assert (looked_up.probabilities[key].argmax(1) == direct.probabilities[key].argmax(1)).all()
    size = len(models.cache)
    uploads = [replace(p, image=np.ascontiguousarray(p.image[:, ::-1]), source="upload") for p in queries]
    app.first_answer(models, plan.class_names, supports, uploads)
    assert models.teacher.embedded == models.student.embedded == len(uploads) and len(models.cache) == size


@pytest.mark.parametrize("steps, every, cancel_at", [(4, 2, None), (5, 2, None), (5, 2, 3), (3, 5, 0)])
def test_the_fine_tuned_students_answers_are_its_own_embeddings_of_the_tasks_pictures(steps, every, cancel_at):
    """refine takes the student's embeddings before fine-tuning and the last snapshot instead of embedding
    the pictures again: they must be what the models give, also after a cancel and between snapshots."""
    plan, supports, queries = read_random_task(2, 3, 3, 2)
    cancel = threading.Event()
    if cancel_at == 0:
        cancel.set()

    def progress(fraction, text):
        if cancel_at and f"step {cancel_at}/" in text:
            cancel.set()

    first = app.first_answer(app.MODELS, plan.class_names, supports, queries)
    result = app.refine(app.MODELS, first, steps, cancel=cancel, progress=progress, snapshot_every=every)
    if cancel_at == 0:  # cancelled before any work: no fine-tuned column
        assert result.cancelled and "student+fine-tune" not in result.embeddings
        return
    images = to_tensor(np.stack([p.image for p in result.pictures]))
    with torch.inference_mode():
        tuned, before = result.tuned_student.embed(images), app.MODELS.student.embed(images)
    done = cancel_at or steps
    assert result.snapshot_steps == sorted({*range(0, done + 1, every), done})
    assert np.allclose(result.snapshots[0], before, atol=1e-5)
    assert np.allclose(result.embeddings["student+fine-tune"], tuned, atol=1e-5)
    assert not np.allclose(result.embeddings["student+fine-tune"], before, atol=1e-3)  # it did train


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_students_map_continued_from_the_teachers_converges_within_its_steps(seed):
    """On the page's tasks, a t-SNE started from the teacher's map (CONTINUED_TSNE_STEPS) reaches the KL
    divergence of a run four times longer (within 5%)."""
    plan, supports, queries = read_random_task(seed, 5, 5, 5)
    result = app.refine(app.MODELS, app.first_answer(app.MODELS, plan.class_names, supports, queries), 5)
    start = projection.project(map_points(result, "teacher")["embeddings"], "t-SNE", 10, 0)
    student = map_points(result, "student+fine-tune")["embeddings"].astype(np.float32)
    divergences = []
    for steps in (projection.CONTINUED_TSNE_STEPS, 4 * projection.CONTINUED_TSNE_STEPS):
        tsne = projection.continued_tsne(10, start, 0, steps)
        tsne.fit_transform(student)
        divergences.append(tsne.kl_divergence_)
    assert divergences[0] <= 1.05 * divergences[1]


def test_the_shipped_gallery_embeddings_belong_to_the_shipped_checkpoints():
    """scripts/embed_gallery.py's file: named by these checkpoints, holding every gallery picture, each as the
    models embed it now (fails after new checkpoints until the file is remade)."""
    models = {"teacher": app.MODELS.teacher, "student": app.MODELS.student}
    cache = EmbeddingCache()
    assert cache.load(GALLERY_EMBEDDINGS, checkpoint_identity(*SHIPPED_CHECKPOINTS), models), \
        "assets/gallery-embeddings.safetensors is missing or stale: run python scripts/embed_gallery.py"
    pictures, _ = app.read_pictures([(app.GALLERY.path(i.file), None, "gallery") for i in app.GALLERY.items],
                                    app.MODELS.image_size)
    images = np.stack([p.image for p in pictures])
    sample = images[::60]
    with torch.inference_mode():
        for name, model in models.items():
            shipped = cache.embed(name, model, images)  # every gallery picture is there: nothing to embed
            fresh = model.embed(to_tensor(sample))
            assert shipped.shape == (len(images), model.embedding_dim)
            assert torch.allclose(shipped[::60], fresh, atol=1e-4)
    assert len(cache) == len(images)


def test_embeddings_saved_for_other_checkpoints_are_not_taken(tmp_path):
    cache, student = EmbeddingCache(), CountingModel(app.MODELS.student)
    images = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    cache.fill("student", student, images)
    cache.save(tmp_path / "embeddings.safetensors", "these checkpoints")
    other = EmbeddingCache()
    assert not other.load(tmp_path / "embeddings.safetensors", "other checkpoints", {"student": student})
    assert not other.load(tmp_path / "embeddings.safetensors", "these checkpoints", {"teacher": student})
    assert not other.load(tmp_path / "missing.safetensors", "these checkpoints", {"student": student})
    assert len(other) == 0
    assert other.load(tmp_path / "embeddings.safetensors", "these checkpoints", {"student": student})
    assert len(other) == 3
    student.embedded = 0
    assert torch.allclose(other.embed("student", student, images), cache.embed("student", student, images))
    assert student.embedded == 0


def test_gallery_pictures_are_decoded_once_for_everyone_and_uploads_each_time(tmp_path):
    item = app.GALLERY.items[7]
    upload = tmp_path / "mine.png"  # a visitor's picture: the same sprite, mirrored
    ImageOps.mirror(Image.open(app.GALLERY.path(item.file))).save(upload)
    first, _, _ = app._read_task([[(str(app.GALLERY.path(item.file)), None, "gallery")]], [])
    again, _, _ = app._read_task([[(str(app.GALLERY.path(item.file)), None, "gallery")]], [])
    assert first[0][0].image is again[0][0].image and not first[0][0].image.flags.writeable
    assert np.array_equal(first[0][0].image, to_model_image(load_image(app.GALLERY.path(item.file)),
                                                            app.MODELS.image_size))
    _, (query,), _ = app._read_task([[]], [(str(upload), None, "upload")])
    _, (query_again,), _ = app._read_task([[]], [(str(upload), None, "upload")])
    assert query.image is not query_again.image  # decoded for each request
    assert np.array_equal(query.image, to_model_image(load_image(upload), app.MODELS.image_size))


def test_each_picture_is_made_an_inline_png_once_per_task_and_size():
    grid, *_, result, details = run_random_task(seed=3, n_query=1)
    uri = result.picture_uri(result.n_support, 56)
    assert uri.startswith("data:image/png;base64,") and result.picture_uri(result.n_support, 56) is uri
    assert uri in grid and result.picture_uri(result.n_support, 40) in details  # the page shows the memo's pictures
    assert result.picture_uri(0, 40) is result.picture_uri(0, 40) != result.picture_uri(0, 56)
