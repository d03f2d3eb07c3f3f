"""pokedemo.train end to end on tiny data made in the test: an ImageFolder, CIFAR-10's binary format,
teacher then distilled student (with unlabeled images), resume, and a loadable checkpoint."""
import json

import numpy as np
import torch
import pytest
from PIL import Image

from pokedemo.checkpoint import load_checkpoint
from pokedemo.data.external import cifar10_data
from pokedemo.models import build_model, count_parameters
from pokedemo.train import grow_into, main as train_main, teacher_targets
from tests.conftest import make_image_folder

TINY = ["--epochs", "1", "--steps-per-epoch", "2", "--classes-per-batch", "3", "--images-per-class", "2",
        "--val-episodes", "5", "--image-size", "32", "--device", "cpu"]


@pytest.fixture
def image_folder(tmp_path):
    make_image_folder(tmp_path / "folder", [(220, 30, 30), (30, 200, 30), (30, 30, 220)])
    (tmp_path / "folder" / "class0" / "broken.png").write_text("not an image")
    (tmp_path / "unlabeled").mkdir()
    for i in range(6):
        Image.new("RGB", (40, 40), (i * 40, 100, 100)).save(tmp_path / "unlabeled" / f"{i}.png")
    return tmp_path


def test_teacher_then_distilled_student_on_an_image_folder(image_folder):
    folder, runs = image_folder / "folder", image_folder / "runs"
    teacher = image_folder / "teacher.safetensors"
    assert train_main(["teacher", "--data", f"folder:{folder}", "--run-dir", str(runs / "t"), "--out", str(teacher),
                       *TINY]) == 0
    model, card = load_checkpoint(teacher)
    assert card["species"] == ["class0", "class1", "class2"] and card["dtype"] == "float16"
    assert json.loads((runs / "t" / "log.jsonl").read_text().splitlines()[0])["epoch"] == 1
    student = image_folder / "student.safetensors"
    assert train_main(["student", "--teacher", str(teacher), "--data", f"folder:{folder}", "--unlabeled",
                       str(image_folder / "unlabeled"), "--run-dir", str(runs / "s"), "--out", str(student),
                       "--arguments", '{"widths": [16, 32], "strides": [2], "patch": 2}', *TINY]) == 0
    model, card = load_checkpoint(student)
    assert card["parameters"] == count_parameters(model) <= 100_000
    assert card["training_head_parameters"] > 0 and card["teacher"]
    assert card["arguments"] == {"widths": [16, 32], "strides": [2], "patch": 2}
    assert model.body[0].kernel_size == (2, 2) and model.embedding_dim == 32
    assert train_main(["student", "--teacher", str(teacher), "--data", f"folder:{folder}", "--run-dir",
                       str(runs / "bad"), "--arguments", "{not json", *TINY]) == 1
    assert train_main(["student", "--teacher", str(teacher), "--data", f"folder:{folder}", "--run-dir",
                       str(runs / "bad"), "--arguments", '{"depth": 3}', *TINY]) == 1


def test_resume_continues_after_the_last_finished_epoch(image_folder, capsys):
    folder, run = image_folder / "folder", image_folder / "runs" / "t"
    args = ["teacher", "--data", f"folder:{folder}", "--run-dir", str(run), "--out",
            str(image_folder / "t.safetensors"), *TINY]
    assert train_main(args) == 0
    args[args.index("--epochs") + 1] = "2"
    assert train_main([*args, "--resume"]) == 0
    assert "resumed teacher" in capsys.readouterr().out
    epochs = [json.loads(line)["epoch"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


def test_cifar10_binary_batches_are_read_at_28_pixels(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for b in (1, 2):
        labels = np.repeat(np.arange(4, dtype=np.uint8), 10)
        records = np.concatenate([labels[:, None], rng.integers(0, 255, (40, 3072), dtype=np.uint8)], axis=1)
        records.tofile(folder / f"data_batch_{b}.bin")
    data = cifar10_data(tmp_path)
    assert data.images.shape[1:] == (28, 28, 3) and data.classes == ["airplane", "automobile", "bird", "cat"]
    assert len(data.images) + len(data.val_images) == 80
    monkeypatch.setenv("POKEDEMO_DATA", str(tmp_path))
    assert train_main(["teacher", "--data", "cifar10", "--run-dir", str(tmp_path / "run"), "--out",
                       str(tmp_path / "c.safetensors"), *TINY]) == 0


def test_missing_cifar10_says_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-binary.tar.gz"):
        cifar10_data(tmp_path)


def test_an_image_folder_is_streamed_by_dataloader_workers_and_a_broken_file_gives_way(image_folder, capsys):
    from pokedemo.data.external import load_train_data

    folder = image_folder / "folder"
    data = load_train_data(f"folder:{folder}", 32)
    assert data.images is None and len(data.files) == len(data.labels) == 3 * 12 + 1 - len(data.val_labels)
    assert data.val_images.shape[1:] == (32, 32, 3)            # only the held-out 10% are read up front
    dataset = data.dataset()
    broken = [k for k, f in enumerate(dataset.files) if f.name == "broken.png"]
    if broken:                                                  # it may be held out instead
        picture, _, label, _ = dataset[broken[0]]
        assert picture.shape == (3, 32, 32) and label == 0 and "broken.png" in capsys.readouterr().out
    out = image_folder / "w.safetensors"
    assert train_main(["teacher", "--data", f"folder:{folder}", "--run-dir", str(image_folder / "runs" / "w"),
                       "--out", str(out), "--workers", "2", *TINY]) == 0
    assert load_checkpoint(out)[1]["species"] == ["class0", "class1", "class2"]


def test_bf16_autocast_trains_when_asked_on_the_cpu(image_folder):
    out = image_folder / "amp.safetensors"
    assert train_main(["teacher", "--data", f"folder:{image_folder / 'folder'}", "--run-dir",
                       str(image_folder / "runs" / "amp"), "--out", str(out), "--amp", "on", *TINY]) == 0
    record = json.loads((image_folder / "runs" / "amp" / "log.jsonl").read_text().splitlines()[0])
    assert np.isfinite(record["loss"]) and 0 <= record["val_5shot"] <= 1


def test_balanced_batches_split_whole_classes_over_the_ranks_without_overlap():
    from pokedemo.data.stream import BalancedBatches, unlabeled_batches

    labels = np.repeat(np.arange(8), 5)
    shares = [list(BalancedBatches(labels, 4, 2, 3, seed=1, rank=r, world_size=2)) for r in (0, 1)]
    alone = list(BalancedBatches(labels, 4, 2, 3, seed=1))
    for step in range(3):
        assert shares[0][step] + shares[1][step] == alone[step]           # the same global batch, split
        assert not {labels[i] for i in shares[0][step]} & {labels[i] for i in shares[1][step]}
    with pytest.raises(ValueError, match="multiple of the processes"):
        BalancedBatches(labels, 3, 1, 1, world_size=2)

    class Numbers(torch.utils.data.Dataset):
        def __len__(self):
            return 20

        def __getitem__(self, index):
            return index

    seen = [next(unlabeled_batches(Numbers(), 10, rank=r, world_size=2)).tolist() for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == 10 and not set(seen[0]) & set(seen[1])   # DistributedSampler shards


def test_the_device_follows_pokedemo_device_and_embeddings_come_back_where_the_pictures_are(monkeypatch):
    from pokedemo.models import build_model, pick_device

    monkeypatch.setenv("POKEDEMO_DEVICE", "cpu")
    assert pick_device().type == "cpu" and pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model("student").eval()
    with torch.inference_mode():
        out = model.embed(torch.rand(2, 3, 64, 64))
    assert out.device.type == "cpu" and torch.allclose(out.norm(dim=1), torch.ones(2))


def test_views_made_in_the_workers_are_the_same_for_any_number_of_workers():
    from pokedemo.data.stream import ArrayImages, BalancedBatches, loader
    from pokedemo.train import NumberedBatches, StepViews, TrainConfig, _as_is

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    alpha = np.zeros((24, 32, 32), np.uint8)
    alpha[:, 8:24, 8:24] = 255                                   # a sprite in the middle, background around
    dataset = ArrayImages(images, alpha, np.repeat(np.arange(6), 4))
    config = TrainConfig(render_p=0.5, seed=3)

    def epoch_views(workers, epoch):
        batches = BalancedBatches(dataset.labels, 3, 2, 3, seed=config.seed)
        batches.set_epoch(epoch)
        return [(views, index) for views, _, _, index in
                loader(StepViews(dataset, config), NumberedBatches(batches), workers, collate=_as_is)]

    alone, shared = epoch_views(0, 1), epoch_views(2, 1)
    assert len(alone) == len(shared) == 3
    for (views, index), (other_views, other_index) in zip(alone, shared):
        assert views.shape == (6, 3, 32, 32) and 0 <= views.min() and views.max() <= 1
        assert torch.equal(index, other_index) and torch.equal(views, other_views)
    assert not torch.equal(alone[0][0], alone[1][0])                  # each step its own views
    assert not torch.equal(alone[0][0], epoch_views(0, 2)[0][0])      # and each epoch


def test_a_run_stopped_before_its_last_epoch_is_finished_from_its_run_folder(image_folder):
    from pokedemo.checkpoint import load_checkpoint as load

    run_dir, out = image_folder / "runs" / "stopped", image_folder / "finished.safetensors"
    common = ["teacher", "--data", f"folder:{image_folder / 'folder'}", "--run-dir", str(run_dir), *TINY]
    assert train_main([*common, "--finish", "--out", str(out)]) == 1              # nothing to finish yet
    assert not out.exists()
    assert train_main([*common, "--out", str(image_folder / "first.safetensors")]) == 0   # 1 epoch of it
    assert train_main([*common[:-len(TINY)], *TINY[:1], "3", *TINY[2:], "--finish", "--out", str(out)]) == 0
    model, card = load(out)
    first, _ = load(image_folder / "first.safetensors")
    assert card["epochs"] == 1 and card["selected_epoch"] == 1 and card["config"]["epochs"] == 3
    assert "--finish" in card["command"]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), first.state_dict().values()))


def test_mixstyle_mixes_early_statistics_in_training_only_and_comes_off():
    import copy

    from pokedemo.augment import MixStyle

    model = build_model("student", widths=[8, 16, 16], strides=[1, 2], patch=2)
    twin = copy.deepcopy(model)                                       # the same network, never hooked
    pictures = torch.rand(6, 3, 16, 16)
    mixing = MixStyle(model, p=1.0)
    model.eval(), twin.eval()
    assert torch.equal(model(pictures), twin(pictures))               # eval: untouched
    model.train(), twin.train()
    outputs = []
    for _ in range(2):
        mixing.generator.manual_seed(5)
        outputs.append(model(pictures))
    assert torch.equal(outputs[0], outputs[1])                        # seeded
    assert not torch.allclose(outputs[0], twin(pictures))             # it mixes in training
    mixing.remove()
    assert torch.equal(model(pictures), twin(pictures))               # and comes off


def test_a_run_with_dead_leaves_and_mixstyle_records_them_in_its_card(image_folder):
    out = image_folder / "robust.safetensors"
    assert train_main(["teacher", "--data", f"folder:{image_folder / 'folder'}", "--run-dir",
                       str(image_folder / "runs" / "r"), "--out", str(out), "--render-p", "0.5", "--leaves",
                       "--mixstyle", "0.5", *TINY]) == 0
    _, card = load_checkpoint(out)
    assert card["config"]["leaves"] is True and card["config"]["mixstyle"] == 0.5


def test_teacher_targets_with_the_mirror_image_average_both_looks_and_runs_record_the_student_options(
        image_folder, capsys):
    torch.manual_seed(0)
    teacher = build_model("teacher", n_classes=3).eval()
    pictures = torch.rand(4, 3, 32, 32)
    with torch.inference_mode():
        logits, embeddings = teacher_targets(teacher, pictures)
        mirrored_logits, mirrored_embeddings = teacher_targets(teacher, pictures.flip(-1))
        both_logits, both_embeddings = teacher_targets(teacher, pictures, mirror=True)
        symmetric = torch.cat([pictures[..., :16], pictures[..., :16].flip(-1)], dim=-1)
        plain_symmetric, mirror_symmetric = teacher_targets(teacher, symmetric), teacher_targets(teacher, symmetric, True)
    assert torch.allclose(both_logits, (logits + mirrored_logits) / 2, atol=1e-5)
    assert torch.allclose(both_embeddings, torch.nn.functional.normalize(embeddings + mirrored_embeddings, dim=-1),
                          atol=1e-5)
    assert not torch.allclose(both_logits, logits, atol=1e-3)          # a picture and its mirror differ
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(plain_symmetric, mirror_symmetric))
    folder, runs = image_folder / "folder", image_folder / "runs"
    teacher_file, student_file = image_folder / "teacher.safetensors", image_folder / "student.safetensors"
    assert train_main(["teacher", "--data", f"folder:{folder}", "--run-dir", str(runs / "t"), "--out",
                       str(teacher_file), *TINY]) == 0
    assert train_main(["student", "--teacher", str(teacher_file), "--data", f"folder:{folder}", "--run-dir",
                       str(runs / "s"), "--out", str(student_file), "--teacher-view", "same", "--teacher-mirror",
                       "--render-p", "0.5", "--arguments", '{"widths": [16, 32], "strides": [2], "patch": 2}',
                       *TINY]) == 0
    card = load_checkpoint(student_file)[1]
    assert card["config"]["teacher_mirror"] is True and card["config"]["teacher_view"] == "same"
    assert train_main(["student", "--teacher", str(teacher_file), "--data", f"folder:{folder}", "--run-dir",
                       str(runs / "r"), "--out", str(image_folder / "relation.safetensors"), "--relation", "5",
                       "--arguments", '{"widths": [16, 32], "strides": [2], "patch": 2}', *TINY]) == 0
    assert load_checkpoint(image_folder / "relation.safetensors")[1]["config"]["relation"] == 5
    same = ["student", "--teacher", str(teacher_file), "--data", f"folder:{folder}", "--teacher-view", "same",
            "--teacher-mirror", "--arguments", '{"widths": [16, 32], "strides": [2], "patch": 2}', *TINY]
    for name, weight in (("a0", "0"), ("a", "50")):
        assert train_main([*same, "--run-dir", str(runs / name), "--out", str(image_folder / f"{name}.safetensors"),
                           "--attention", weight]) == 0
    assert load_checkpoint(image_folder / "a.safetensors")[1]["config"]["attention"] == 50
    logged = [json.loads((runs / name / "log.jsonl").read_text().splitlines()[0])["loss"] for name in ("a0", "a")]
    assert logged[1] > logged[0]                # the same steps, with the term added: a larger loss
    for refused in (["--teacher-view", "clean"], ["--attention", "-1"]):
        assert train_main([*same, "--run-dir", str(runs / "b"), "--attention", "50", *refused]) == 2
        assert "--attention is a weight of 0 or more" in capsys.readouterr().err


def test_a_grown_student_embeds_almost_as_the_narrower_one_and_a_run_grows_from_it(image_folder):
    torch.manual_seed(0)
    narrow = build_model("student", widths=[8, 16, 24], strides=[2, 1], patch=2).eval()
    wide = build_model("student", widths=[8, 20, 32], strides=[2, 1], patch=2).eval()
    with torch.no_grad():   # trained-looking statistics, so that copying them matters
        for module in narrow.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2), module.running_var.uniform_(0.5, 2)
                module.weight.uniform_(0.5, 2)
    grow_into(wide, narrow.state_dict())
    pictures = torch.rand(6, 3, 32, 32)
    with torch.inference_mode():
        before, after = narrow.embed(pictures), wide.embed(pictures)
    assert after.shape == (6, 32)
    assert torch.nn.functional.cosine_similarity(before, after[:, :24]).min() > 0.999
    assert after[:, 24:].abs().max() < 0.05 and after[:, 24:].abs().max() > 0   # new channels: quiet, not dead
    with pytest.raises(ValueError, match="does not fit"):
        grow_into(narrow, wide.state_dict())
    with pytest.raises(ValueError, match="other layers"):
        grow_into(build_model("student", widths=[8, 16], strides=[2], patch=2), narrow.state_dict())
    with pytest.raises(ValueError, match="lacks layers"):     # deeper: its last block would stay random
        grow_into(build_model("student", widths=[8, 16, 24, 32], strides=[2, 1, 1], patch=2), narrow.state_dict())
    with pytest.raises(ValueError, match="lacks layers"):
        grow_into(narrow, {})
    folder, runs = image_folder / "folder", image_folder / "runs"
    teacher_file, narrow_file = image_folder / "teacher.safetensors", image_folder / "narrow.safetensors"
    assert train_main(["teacher", "--data", f"folder:{folder}", "--run-dir", str(runs / "t"), "--out",
                       str(teacher_file), *TINY]) == 0
    common = ["student", "--teacher", str(teacher_file), "--data", f"folder:{folder}", *TINY]
    assert train_main([*common, "--run-dir", str(runs / "n"), "--out", str(narrow_file),
                       "--arguments", '{"widths": [8, 16, 24], "strides": [2, 1], "patch": 2}']) == 0
    assert train_main([*common, "--run-dir", str(runs / "w"), "--out", str(image_folder / "wide.safetensors"),
                       "--init", str(narrow_file),
                       "--arguments", '{"widths": [8, 20, 32], "strides": [2, 1], "patch": 2}']) == 0
    model, card = load_checkpoint(image_folder / "wide.safetensors")
    assert model.embedding_dim == 32 and card["init"] == str(narrow_file)


def test_a_soup_is_the_mean_of_its_ingredients_scored_on_val_and_refuses_misfits(image_folder):
    folder, runs = image_folder / "folder", image_folder / "runs"
    teacher = image_folder / "teacher.safetensors"
    assert train_main(["teacher", "--data", f"folder:{folder}", "--run-dir", str(runs / "t"), "--out", str(teacher),
                       *TINY]) == 0
    shape = '{"widths": [8, 16], "strides": [2], "patch": 2}'
    common = ["student", "--teacher", str(teacher), "--data", f"folder:{folder}", *TINY]
    ingredients = []
    for seed in (0, 1):
        ingredients.append(image_folder / f"s{seed}.safetensors")
        assert train_main([*common, "--seed", str(seed), "--run-dir", str(runs / f"s{seed}"), "--out",
                           str(ingredients[-1]), "--arguments", shape]) == 0
    soup_file = image_folder / "soup.safetensors"
    assert train_main([*common, "--run-dir", str(runs / "soup"), "--out", str(soup_file),
                       "--soup", *map(str, ingredients)]) == 0
    soup, card = load_checkpoint(soup_file)
    (a, _), (b, _) = load_checkpoint(ingredients[0]), load_checkpoint(ingredients[1])
    averaged = {k: (v + b.state_dict()[k]) / 2 for k, v in a.state_dict().items() if v.is_floating_point()}
    assert not torch.equal(averaged["body.0.weight"], a.state_dict()["body.0.weight"])   # the runs differ
    assert all(torch.allclose(soup.state_dict()[k], v, atol=1e-6) for k, v in averaged.items())
    assert card["arguments"] == json.loads(shape) and 0 <= card["val_5shot"] <= 1
    assert [i["path"] for i in card["soup"]] == list(map(str, ingredients)) and "--soup" in card["command"]
    assert card["soup"][1]["command"].count("--seed 1") == 1 and len(card["base_mean"]) == 16
    assert card["teacher"] is None and card["soup"][0]["teacher"] == load_checkpoint(teacher)[1]["command"]
    assert card["training_head_parameters"] == 0 and card["parameters"] == count_parameters(soup)
    other = image_folder / "other.safetensors"
    assert train_main([*common, "--run-dir", str(runs / "o"), "--out", str(other),
                       "--arguments", '{"widths": [8, 24], "strides": [2], "patch": 2}']) == 0
    for misfit in ([str(ingredients[0]), str(other)], [str(ingredients[0]), str(teacher)], [str(ingredients[0])]):
        assert train_main([*common, "--run-dir", str(runs / "bad"), "--out", str(image_folder / "bad.safetensors"),
                           "--soup", *misfit]) == 1
    assert not (image_folder / "bad.safetensors").exists()


def test_a_teacher_without_the_stem_pool_keeps_its_weights_sees_twice_the_resolution_and_keeps_to_it(image_folder, capsys):
    pooled, unpooled = build_model("teacher", n_classes=3), build_model("teacher", n_classes=3, stem_pool=False)
    assert pooled.arguments == {"n_classes": 3} and unpooled.arguments == {"n_classes": 3, "stem_pool": False}
    unpooled.load_state_dict(pooled.state_dict())                       # the same weights fit
    sizes = []
    for model in (pooled, unpooled):
        hook = model.backbone.layer4.register_forward_hook(lambda module, inputs, output: sizes.append(output.shape[-1]))
        model.eval().embed(torch.rand(2, 3, 64, 64))
        hook.remove()
    assert sizes == [2, 4]                                              # the last stage at 64 px
    folder, runs = image_folder / "folder", image_folder / "runs"
    first, second = image_folder / "t.safetensors", image_folder / "t-nopool.safetensors"
    assert train_main(["teacher", "--data", f"folder:{folder}", "--run-dir", str(runs / "t"), "--out", str(first),
                       *TINY]) == 0
    assert train_main(["teacher", "--data", f"folder:{folder}", "--run-dir", str(runs / "n"), "--out", str(second),
                       "--init", str(first), "--arguments", '{"stem_pool": false}', *TINY]) == 0
    model, card = load_checkpoint(second)
    assert card["arguments"] == {"n_classes": 3, "stem_pool": False} and isinstance(model.backbone.maxpool, torch.nn.Identity)
    model, card = load_checkpoint(first)
    assert card["arguments"] == {"n_classes": 3} and isinstance(model.backbone.maxpool, torch.nn.MaxPool2d)
    common = ["teacher", "--data", f"folder:{folder}", *TINY]
    assert train_main([*common, "--run-dir", str(runs / "s"), "--out", str(image_folder / "s.safetensors"),
                       "--soup", str(first), str(second)]) == 1                  # two networks do not average
    for again in ("--resume", "--finish"):                                        # the run's own network, or none
        assert train_main([*common, "--run-dir", str(runs / "n"), "--out", str(image_folder / "r.safetensors"),
                           again]) == 1
        assert "give the run's --arguments" in capsys.readouterr().err
    assert not (image_folder / "s.safetensors").exists() and not (image_folder / "r.safetensors").exists()
    with pytest.raises(ValueError, match="stem_pool"):
        build_model("teacher", stem_pool="false")


def test_an_attention_pool_starts_as_the_global_average_then_weighs_the_positions(tmp_path):
    from pokedemo.checkpoint import save_checkpoint
    from pokedemo.compress import optimise_for_inference

    torch.manual_seed(0)
    plain = build_model("student", widths=[8, 16, 24], strides=[2, 1], patch=2).eval()
    pooled = build_model("student", widths=[8, 16, 24], strides=[2, 1], patch=2, pool="attention").eval()
    assert count_parameters(pooled) == count_parameters(plain) + 24
    assert pooled.arguments["pool"] == "attention" and "pool" not in plain.arguments
    grow_into(pooled, plain.state_dict())                 # the round's start: the mean-pool student's weights
    pictures = torch.rand(6, 3, 32, 32)
    with torch.inference_mode():
        assert torch.allclose(pooled.embed(pictures), plain.embed(pictures), atol=1e-6)
        pooled.attention.weight.normal_()                 # scores that differ by position: no longer the average
        assert not torch.allclose(pooled.embed(pictures), plain.embed(pictures), atol=1e-3)
        maps = pooled.body((pictures - 0.5) / 0.25)
        weights = torch.softmax(pooled.attention(maps).flatten(2), dim=-1)
        assert torch.allclose(pooled(pictures), (maps.flatten(2) * weights).sum(-1), atol=1e-5)
        assert torch.allclose(optimise_for_inference(pooled).embed(pictures), pooled.embed(pictures), atol=1e-5)
    path = save_checkpoint(pooled, tmp_path / "s.safetensors", {"architecture": "student",
                                                                  "arguments": pooled.arguments})
    loaded, _ = load_checkpoint(path)
    with torch.inference_mode():
        assert torch.equal(loaded.embed(pictures), pooled.embed(pictures))
    with pytest.raises(ValueError, match="pool"):
        build_model("student", pool="max")
