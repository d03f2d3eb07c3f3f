"""pokedemo.train end to end on tiny data made in the test: an ImageFolder, CIFAR-10's binary format,
teacher then distilled student (with unlabeled images), resume, and a loadable checkpoint."""
import json

import numpy as np
import pytest
from PIL import Image

from pokedemo.checkpoint import load_checkpoint
from pokedemo.data.external import cifar10_data
from pokedemo.models import count_parameters
from pokedemo.train import main as train_main
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
