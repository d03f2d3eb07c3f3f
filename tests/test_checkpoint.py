"""pokedemo.checkpoint: one save/load, never a pickle; the shipped checkpoints are what their cards say."""
import json
import pickle

import pytest
import torch

from pokedemo.checkpoint import load_checkpoint, read_card, save_checkpoint
from pokedemo.config import CHECKPOINT_DIR
from pokedemo.models import Embedding, build_model, count_parameters


def test_a_checkpoint_round_trips_weights_and_card(tmp_path):
    torch.manual_seed(0)
    model = build_model("student").eval()
    path = save_checkpoint(model, tmp_path / "s.safetensors", {"architecture": "student", "arguments": {}, "x": 1})
    loaded, card = load_checkpoint(path)
    assert card["x"] == 1 and card["dtype"] == "float32"
    images = torch.rand(2, 3, 64, 64)
    assert torch.allclose(model.embed(images), loaded.embed(images))


def test_a_pickle_is_refused_without_being_opened(tmp_path):
    path = tmp_path / "student.pt"
    path.write_bytes(pickle.dumps({"boom": 1}))
    with pytest.raises(ValueError, match="only .safetensors"):
        load_checkpoint(path)


def test_a_pickle_renamed_safetensors_or_a_tampered_file_is_refused(tmp_path):
    card = {"architecture": "student", "arguments": {}}
    fake = tmp_path / "fake.safetensors"
    fake.write_bytes(pickle.dumps({"boom": 1}))
    fake.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        load_checkpoint(fake)
    real = save_checkpoint(build_model("student"), tmp_path / "real.safetensors", card)
    data = bytearray(real.read_bytes())
    real.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        load_checkpoint(real)


def test_weights_that_do_not_match_the_card_are_refused(tmp_path):
    path = save_checkpoint(build_model("student", widths=(8, 16), strides=(2,)), tmp_path / "s.safetensors",
                           {"architecture": "student", "arguments": {}})
    with pytest.raises(ValueError, match="does not match its card"):
        load_checkpoint(path)


@pytest.mark.parametrize("name", ["teacher", "student"])
def test_the_shipped_checkpoints_load_and_match_their_cards(name):
    model, card = load_checkpoint(CHECKPOINT_DIR / f"{name}.safetensors")
    assert count_parameters(model) == card["parameters"]
    assert card["input_size"] == 64 and len(card["base_mean"]) == model.embedding_dim
    embeddings = model.embed(torch.rand(3, 3, 64, 64))
    assert embeddings.shape == (3, model.embedding_dim)
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(3), atol=1e-4)


def test_the_student_is_at_most_100k_parameters_and_the_teacher_at_most_25_mb():
    student, _ = load_checkpoint(CHECKPOINT_DIR / "student.safetensors")
    # with what it reads on a photo: the segmenter its card names (`photo_blend`) counts towards the limit; a mask
    # head saves only itself and reads this very student's maps (its file, checked by SHA-256 when loading)
    extra = count_parameters(student.photo_blend.segmenter) if student.photo_blend is not None else 0
    if student.photo_blend is not None and read_card(student.photo_blend.path).get("backbone"):
        backbone = student.photo_blend.path.parent / read_card(student.photo_blend.path)["backbone"]["file"]
        assert backbone.resolve() == (CHECKPOINT_DIR / "student.safetensors").resolve()
    assert count_parameters(student) + extra <= 100_000
    card = read_card(CHECKPOINT_DIR / "student.safetensors")      # the blend is on exactly when val chose it
    assert bool(card.get("photo_blend")) == card["photo_blend_val"]["chosen"] == (student.photo_blend is not None)
    if card.get("photo_blend"):
        assert card["photo_blend"] == card["photo_blend_val"]["entry"]
    assert (CHECKPOINT_DIR / "teacher.safetensors").stat().st_size <= 25_000_000


def test_every_architecture_records_the_arguments_that_rebuild_it(tmp_path):
    from pokedemo.checkpoint import load_checkpoint, save_checkpoint
    from pokedemo.models import MODELS, build_model

    for name, arguments in (("student", {"widths": [8, 16], "strides": [2], "patch": 4}),
                            ("paper-student", {"embedding_dim": 32}), ("teacher", {"n_classes": 7})):
        model = build_model(name, **arguments)
        assert model.arguments == arguments
        saved = save_checkpoint(model, tmp_path / f"{name}.safetensors", {"architecture": name,
                                                                         "arguments": model.arguments})
        loaded, card = load_checkpoint(saved)
        assert type(loaded) is MODELS[name] and card["arguments"] == arguments


def test_a_card_that_says_flip_average_makes_the_model_embed_a_picture_with_its_mirror_image(tmp_path):
    from pokedemo.checkpoint import checkpoint_identity
    from tests.conftest import student_with_card

    path, plain, before = student_with_card(tmp_path, {"flip_average": True})
    mirrored, card = load_checkpoint(path)
    assert card["flip_average"] and mirrored.flip_average and not plain.flip_average
    images = torch.rand(3, 3, 64, 64)
    expected = torch.nn.functional.normalize(plain.embed(images) + plain.embed(images.flip(-1)), dim=-1)
    assert torch.allclose(mirrored.embed(images), expected, atol=1e-5)
    assert torch.allclose(mirrored.embed(images), mirrored.embed(images.flip(-1)), atol=1e-5)
    assert torch.allclose(mirrored.embed(images, test_time=False), plain.embed(images))
    assert checkpoint_identity(path) != before      # the gallery's stored embeddings are stale then


def test_the_exported_embedding_looks_twice_when_the_model_does():
    torch.manual_seed(0)
    model = build_model("student").eval()
    model.flip_average = True
    images = torch.rand(3, 3, 64, 64)
    program = torch.export.export(Embedding(model).eval(), (torch.rand(2, 3, 64, 64),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    with torch.inference_mode():
        assert torch.allclose(program.module()(images), model.embed(images), atol=1e-5)
        assert not torch.allclose(program.module()(images), model.embed(images, test_time=False), atol=1e-3)


def test_a_card_that_says_inference_dtype_embeds_in_it_at_test_time_only(tmp_path, monkeypatch):
    from pokedemo.checkpoint import checkpoint_identity
    from tests.conftest import student_with_card

    path, plain, before = student_with_card(tmp_path, {"inference_dtype": "bfloat16"})
    assert checkpoint_identity(path) != before      # the gallery's stored embeddings are stale then
    monkeypatch.setenv("POKEDEMO_INFERENCE_DTYPE", "float32")
    assert load_checkpoint(path)[0].inference_dtype is None
    monkeypatch.setenv("POKEDEMO_INFERENCE_DTYPE", "bfloat16")
    low, _ = load_checkpoint(path)
    assert low.inference_dtype is torch.bfloat16
    seen = []
    low.body[0].register_forward_hook(lambda module, args, output: seen.append(output.dtype))
    images = torch.rand(4, 3, 64, 64)
    with torch.inference_mode():
        embedded = low.embed(images)
        assert seen == [torch.bfloat16] and embedded.dtype == torch.float32
        assert torch.nn.functional.cosine_similarity(embedded, plain.embed(images)).min() > 0.98
        assert not torch.equal(embedded, plain.embed(images))
        assert torch.allclose(low.embed(images, test_time=False), plain.embed(images, test_time=False), atol=1e-5)
        assert seen[-1] == torch.float32                # training and fine-tuning steps stay in float32
    monkeypatch.setenv("POKEDEMO_INFERENCE_DTYPE", "int4")
    with pytest.raises(ValueError, match="POKEDEMO_INFERENCE_DTYPE"):
        load_checkpoint(path)
    monkeypatch.delenv("POKEDEMO_INFERENCE_DTYPE")     # then measured, once per network: used where 1.2x faster
    import pokedemo.checkpoint as checkpoint
    import pokedemo.compress as compress

    measured = []
    for speed_up, expected in ((1.1, None), (1.3, torch.bfloat16)):
        monkeypatch.setattr(checkpoint, "_faster", {})
        monkeypatch.setattr(compress, "low_precision_speed_up", lambda model, dtype, **kwargs: measured.append(dtype)
                            or speed_up)
        assert load_checkpoint(path)[0].inference_dtype is expected
        assert load_checkpoint(path)[0].inference_dtype is expected     # the second load reuses the measurement
    assert measured == [torch.bfloat16, torch.bfloat16]
    import threading
    monkeypatch.setattr(checkpoint, "_faster", {})       # two threads loading at once: one measurement
    started = threading.Barrier(2)

    def slow_measurement(model, dtype, **kwargs):
        measured.append(dtype)
        threading.Event().wait(0.3)                       # long enough for the other thread to arrive
        return 1.3

    monkeypatch.setattr(compress, "low_precision_speed_up", slow_measurement)
    loaded = []
    threads = [threading.Thread(target=lambda: (started.wait(), loaded.append(load_checkpoint(path)[0])))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(measured) == 3 and [model.inference_dtype for model in loaded] == [torch.bfloat16] * 2
    record = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps(record | {"inference_dtype": "float8"}))
    with pytest.raises(ValueError, match="inference_dtype 'float8'"):
        load_checkpoint(path)
