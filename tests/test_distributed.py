"""Data-parallel training under torchrun (2 processes, gloo, CPU) on tiny data made in the test."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from pokedemo.checkpoint import read_card
from tests.conftest import make_image_folder

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--steps-per-epoch", "2", "--classes-per-batch", "4", "--images-per-class", "2", "--val-episodes", "5",
        "--image-size", "32", "--device", "cpu"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    make_image_folder(root / "folder", [(220, 30, 30), (30, 200, 30), (30, 30, 220), (200, 200, 30)])
    make_image_folder(root / "unlabeled", [(120, 60, 200), (60, 160, 160)], per_class=5)
    return root


def torchrun(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "pokedemo.train", *args, *TINY]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_two_processes_train_a_teacher_in_step_and_only_rank_0_writes(folder):
    run, out = folder / "runs" / "t", folder / "t.safetensors"
    done = torchrun("teacher", "--data", f"folder:{folder / 'folder'}", "--run-dir", str(run), "--out", str(out),
                    "--epochs", "2")
    assert "all 2 processes hold identical weights" in done.stdout
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [r["epoch"] for r in records] == [1, 2]                  # printed once, by rank 0
    assert [json.loads(line)["epoch"] for line in (run / "log.jsonl").read_text().splitlines()] == [1, 2]
    assert sorted(p.name for p in run.iterdir()) == ["best.safetensors", "last.safetensors", "log.jsonl",
                                                     "state.json"]
    assert read_card(out)["world_size"] == 2


def test_the_same_seed_gives_the_same_weights_twice(folder):
    first, second = folder / "a.safetensors", folder / "b.safetensors"
    for out, run in ((first, "a"), (second, "b")):
        torchrun("teacher", "--data", f"folder:{folder / 'folder'}", "--run-dir", str(folder / "runs" / run),
                 "--out", str(out), "--epochs", "1")
    one, two = load_file(str(first)), load_file(str(second))
    assert one.keys() == two.keys() and all((one[k] == two[k]).all() for k in one)


def test_resume_under_torchrun_continues_the_epochs_and_a_student_distils_with_unlabeled_images(folder):
    run, teacher = folder / "runs" / "r", folder / "r.safetensors"
    torchrun("teacher", "--data", f"folder:{folder / 'folder'}", "--run-dir", str(run), "--out", str(teacher),
             "--epochs", "1")
    done = torchrun("teacher", "--data", f"folder:{folder / 'folder'}", "--run-dir", str(run), "--out", str(teacher),
                    "--epochs", "2", "--resume")
    assert done.stdout.count("resumed teacher") == 1
    assert [json.loads(line)["epoch"] for line in (run / "log.jsonl").read_text().splitlines()] == [1, 2]
    student = folder / "s.safetensors"
    done = torchrun("student", "--teacher", str(teacher), "--data", f"folder:{folder / 'folder'}", "--run-dir",
                    str(folder / "runs" / "s"), "--out", str(student), "--epochs", "1", "--workers", "1",
                    "--unlabeled", str(folder / "unlabeled"),   # each rank its own shard (DistributedSampler)
                    "--arguments", '{"widths": [16, 32], "strides": [2], "patch": 2}')
    assert "all 2 processes hold identical weights" in done.stdout and read_card(student)["world_size"] == 2
