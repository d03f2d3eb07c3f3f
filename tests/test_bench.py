"""pokedemo.bench on a tiny prepared dataset: the command, its table and its JSON rows."""
import json

import torch

from pokedemo.bench import main as bench_main
from pokedemo.data.__main__ import main as data_main
from tests.conftest import build_package


def prepare_tiny_dataset(tmp_path):
    """Eight species of uniform colours (6 novel, 1 val-range, 1 base-range), prepared into data_root."""
    colours = [(230, 20, 20), (20, 200, 20), (20, 20, 230), (230, 230, 20), (20, 220, 220), (220, 20, 220),
               (120, 120, 120), (90, 60, 30)]
    tarball = build_package(tmp_path / "p.tgz", dict(zip([1, 2, 3, 4, 5, 6, 200, 300], colours)), n_frames=8,
                            uniform=True)
    assert data_main(["prepare", "--tarball", str(tarball)]) == 0


def test_fewshot_bench_writes_one_json_row_per_model_and_shot(tmp_path, data_root, capsys):
    prepare_tiny_dataset(tmp_path)
    out = tmp_path / "rows.json"
    assert bench_main(["fewshot", "--model", "pixels", "--model", "random-student", "--episodes", "20",
                       "--json", str(out), "--threads", "1"]) == 0
    rows = json.loads(out.read_text())
    assert [(r["model"], r["n_shot"]) for r in rows] == [("pixels", 1), ("pixels", 5), ("random-student", 1),
                                                         ("random-student", 5)]
    assert set(rows[0]) == {"model", "track", "split", "n_way", "n_shot", "support_views", "flip_average", "photo_blend",
                            "inference_dtype", "n_query", "episodes", "seed", "accuracy", "ci95", "seconds"}
    assert {r["track"] for r in rows} == {"clean"}
    assert all(0.2 <= r["accuracy"] <= 1 and r["episodes"] == 20 for r in rows)
    # colours separate the toy species: raw pixels must beat chance by far
    assert rows[1]["accuracy"] > 0.6
    assert "pixels" in capsys.readouterr().out


def test_every_track_is_a_row_and_the_photo_tracks_are_harder_for_raw_pixels(tmp_path, data_root):
    prepare_tiny_dataset(tmp_path)
    out = tmp_path / "rows.json"
    tracks = ["clean", "art", "photo", "photo-both"]
    command = ["fewshot", "--model", "pixels", *[a for t in tracks for a in ("--track", t)], "--shots", "1",
               "--episodes", "30", "--json", str(out), "--threads", "1"]
    assert bench_main([*command, "--support-views", "0"]) == 0           # plain prototypes
    rows = {r["track"]: r for r in json.loads(out.read_text())}
    assert list(rows) == tracks and rows["art"]["n_query"] == 1 and rows["photo"]["n_query"] == 15
    # uniform colours on white: pixels nail clean and art (the tiny art is the same colour), not photo-like queries
    assert rows["clean"]["accuracy"] > 0.9 and rows["photo"]["accuracy"] < rows["clean"]["accuracy"] - 0.2
    assert bench_main(command) == 0                                     # photo-ready prototypes (the default)
    ready = {r["track"]: r for r in json.loads(out.read_text())}
    assert ready["clean"]["accuracy"] == rows["clean"]["accuracy"]      # sprite queries: the same prototypes
    assert ready["photo"]["accuracy"] > rows["photo"]["accuracy"]       # photo queries: the supports' views help
    assert ready["photo-both"]["accuracy"] == rows["photo-both"]["accuracy"]  # photo supports have no mask


def test_mirror_averaging_can_be_forced_for_a_measurement_but_not_recorded(tmp_path, data_root, capsys):
    prepare_tiny_dataset(tmp_path)
    out = tmp_path / "rows.json"
    looks = {}
    for flip in ("off", "on"):
        assert bench_main(["fewshot", "--model", "random-student", "--shots", "1", "--episodes", "10",
                           "--flip-average", flip, "--json", str(out), "--threads", "1"]) == 0
        looks[flip] = json.loads(out.read_text())[0]
    assert looks["off"]["flip_average"] is False and looks["on"]["flip_average"] is True
    assert bench_main(["fewshot", "--model", "student", "--flip-average", "on", "--record", "--episodes", "5"]) == 1
    assert "as the card says" in capsys.readouterr().err


def untrained_student_as_shipped(tmp_path, monkeypatch):
    """The tiny dataset prepared in tmp_path, and a seeded untrained student saved there as the bench's shipped
    student (`bench.CHECKPOINT_DIR`); returns its weights' path."""
    import torch

    import pokedemo.bench as bench
    from pokedemo.checkpoint import save_checkpoint
    from pokedemo.models import build_model

    prepare_tiny_dataset(tmp_path)
    torch.manual_seed(0)
    model = build_model("student")
    monkeypatch.setattr(bench, "CHECKPOINT_DIR", tmp_path)
    return save_checkpoint(model, tmp_path / "student.safetensors",
                           {"architecture": "student", "arguments": model.arguments})


def test_the_photo_blend_is_chosen_on_val_at_the_weight_asked_and_a_weight_of_0_is_refused(tmp_path, data_root,
                                                                                          monkeypatch, capsys):
    import pokedemo.bench as bench
    from pokedemo.checkpoint import read_card

    weights = untrained_student_as_shipped(tmp_path, monkeypatch)
    assert bench_main(["photo-blend", "--model", "student", "--episodes", "5", "--weight", "0"]) == 1
    assert "weight must be above 0" in capsys.readouterr().err
    out, blends = tmp_path / "blend.json", []
    from_card = bench.PhotoBlend.from_card                            # which blends the measurement builds
    monkeypatch.setattr(bench.PhotoBlend, "from_card",
                        classmethod(lambda cls, entry, folder: blends.append(from_card(entry, folder)) or blends[-1]))
    assert bench_main(["photo-blend", "--model", "student", "--episodes", "5", "--threads", "1", "--weight", "0.6",
                       "--json", str(out), "--record"]) == 0
    assert blends and all(blend.weight == 0.6 for blend in blends)
    row = json.loads(out.read_text())["models"][0]
    assert row["entry"] == {"segmenter": bench.SEGMENTER.name, "weight": 0.6} and len(row["on"]) == 8
    assert row["on"] != row["off"]                                  # the tiny tracks' photos are blended
    assert read_card(weights)["photo_blend"] == (row["entry"] if row["chosen"] else None)


def test_the_photo_blend_can_be_forced_for_a_measurement_but_not_recorded(tmp_path, data_root, capsys):
    prepare_tiny_dataset(tmp_path)
    out = tmp_path / "rows.json"
    rows = {}
    for blend in ("off", "on"):
        assert bench_main(["fewshot", "--model", "random-student", "--shots", "1", "--episodes", "10", "--track",
                           "photo", "--photo-blend", blend, "--json", str(out), "--threads", "1"]) == 0
        rows[blend] = json.loads(out.read_text())[0]
    assert rows["off"]["photo_blend"] is False and rows["on"]["photo_blend"] is True
    assert rows["on"]["accuracy"] != rows["off"]["accuracy"]       # the photo queries are embedded otherwise
    assert bench_main(["fewshot", "--model", "student", "--photo-blend", "off", "--record", "--episodes", "5"]) == 1
    assert "as the card says" in capsys.readouterr().err


def test_several_models_with_one_checkpoint_is_refused(data_root, capsys, tmp_path):
    assert bench_main(["fewshot", "--model", "student", "--model", "teacher", "--checkpoint",
                       str(tmp_path / "s.safetensors")]) == 1
    assert "exactly one --model" in capsys.readouterr().err


def test_a_negative_count_for_the_fine_tuning_curve_is_refused_before_any_work(data_root, capsys, tmp_path):
    out = tmp_path / "curve.json"
    for flags in (["--photo-copies", "-1"], ["--steps", "0", "-5"]):
        assert bench_main(["finetune-curve", *flags, "--out", str(out)]) == 1
        assert "0 or more" in capsys.readouterr().err and not out.exists()


def test_a_missing_dataset_is_a_clear_error(data_root, capsys):
    assert bench_main(["fewshot", "--model", "pixels", "--episodes", "5"]) == 1
    assert "python -m pokedemo.data prepare" in capsys.readouterr().err


def test_record_stores_the_measured_figures_in_the_card(tmp_path, data_root):
    import torch

    from pokedemo.checkpoint import read_card, save_checkpoint
    from pokedemo.models import build_model

    prepare_tiny_dataset(tmp_path)
    torch.manual_seed(0)
    model = build_model("student")
    weights = save_checkpoint(model, tmp_path / "s.safetensors", {"architecture": "student", "arguments": model.arguments})
    out = tmp_path / "rows.json"
    assert bench_main(["fewshot", "--model", "student", "--checkpoint", str(weights), "--episodes", "10",
                       "--json", str(out), "--threads", "1", "--record"]) == 0
    rows, card = json.loads(out.read_text()), read_card(weights)
    for row in rows:
        recorded = card["scores"][f"novel_5way_{row['n_shot']}shot"]  # the clean track keeps its old key
        assert recorded["accuracy"] == round(row["accuracy"], 4) and recorded["episodes"] == 10
    assert "--record" in card["scores_command"]


def test_flip_average_is_measured_on_val_with_and_without_and_the_choice_recorded(tmp_path, data_root, monkeypatch):
    from pokedemo.checkpoint import load_checkpoint, read_card

    weights = untrained_student_as_shipped(tmp_path, monkeypatch)
    out = tmp_path / "flip.json"
    assert bench_main(["flip-average", "--model", "student", "--episodes", "5", "--threads", "1", "--json", str(out),
                       "--record"]) == 0
    row = json.loads(out.read_text())["models"][0]
    assert row["split"] == "val" and set(row["on"]) == set(row["off"]) and len(row["on"]) == 8   # 4 tracks x 2 shots
    assert row["chosen"] == (row["mean_on"] > row["mean_off"])
    card = read_card(weights)
    assert card["flip_average"] == row["chosen"] and "flip-average" in card["commands"]["flip_average"]
    assert load_checkpoint(weights)[0].flip_average == row["chosen"]
    assert bench_main(["flip-average", "--record", "--episodes", "5"]) == 1      # the teacher looks once on the page


def test_bfloat16_arithmetic_is_measured_on_val_against_float32_and_the_choice_recorded(tmp_path, data_root,
                                                                                          monkeypatch):
    from pokedemo.checkpoint import load_checkpoint, read_card

    weights = untrained_student_as_shipped(tmp_path, monkeypatch)
    out = tmp_path / "dtype.json"
    assert bench_main(["inference-dtype", "--model", "student", "--episodes", "5", "--threads", "1", "--json",
                       str(out), "--record"]) == 0
    row = json.loads(out.read_text())["models"][0]
    assert row["split"] == "val" and set(row["on"]) == set(row["off"]) and len(row["on"]) == 8
    assert row["chosen"] == (row["mean_on"] >= row["mean_off"] - row["margin"])
    card = read_card(weights)
    assert card["inference_dtype"] == ("bfloat16" if row["chosen"] else None)
    monkeypatch.setenv("POKEDEMO_INFERENCE_DTYPE", "bfloat16")
    assert load_checkpoint(weights)[0].inference_dtype == (torch.bfloat16 if row["chosen"] else None)
    rows = tmp_path / "rows.json"
    assert bench_main(["fewshot", "--model", "student", "--episodes", "5", "--shots", "5", "--threads", "1",
                       "--json", str(rows)]) == 0
    assert json.loads(rows.read_text())[0]["inference_dtype"] == ("bfloat16" if row["chosen"] else "float32")
