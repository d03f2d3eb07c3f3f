"""scripts/deploy_space.py offline: the bundle a Space gets, its checks, and a simulated Space
(scripts/simulate_space.py): the bundle served read-only from a fresh environment of its own requirements."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts.deploy_space import CPU_TORCH_INDEX, build, check, lfs_patterns, main as deploy_main  # noqa: E402
from scripts.simulate_space import set_writable, local_requirements, simulate  # noqa: E402


def test_the_dry_run_bundle_holds_what_the_page_loads_and_nothing_else(tmp_path):
    out = tmp_path / "space"
    assert deploy_main(["--dry-run", "--out", str(out)]) == 0
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert {"app.py", "README.md", "requirements.txt", ".gitattributes", "checkpoints/teacher.safetensors",
            "checkpoints/student.safetensors", "assets/gallery/index.csv", "assets/gallery/alpha.npz",
            "assets/gallery-embeddings.safetensors"} <= files
    blend = json.loads((out / "checkpoints/student.json").read_text()).get("photo_blend")
    assert any("segmenter" in f for f in files) == bool(blend)       # only where a card names it (test below)
    assert not any(f.startswith(("data/", "runs/", "tests/", "scripts/")) or "paper-student" in f for f in files)
    requirements = (out / "requirements.txt").read_text()
    assert "download.pytorch.org/whl/cpu" in requirements and "torch==2.14.1+cpu" in requirements
    assert "resvg" not in requirements and "pytest" not in requirements and "-r " not in requirements
    assert "*.safetensors" in lfs_patterns(out / ".gitattributes")


def test_a_segmenter_goes_into_the_bundle_when_and_only_when_a_card_names_it(tmp_path):
    from scripts.deploy_space import bundle_files

    (tmp_path / "checkpoints").mkdir()
    for name in ("teacher", "student", "segmenter"):
        (tmp_path / "checkpoints" / f"{name}.safetensors").write_bytes(b"weights")
        (tmp_path / "checkpoints" / f"{name}.json").write_text("{}")
    bundled = lambda: {str(p.relative_to(tmp_path)) for p in bundle_files(tmp_path)}
    assert "checkpoints/segmenter.safetensors" not in bundled()
    (tmp_path / "checkpoints/student.json").write_text(json.dumps({"photo_blend": {"segmenter": "segmenter.safetensors",
                                                                                   "weight": 0.3}}))
    assert {"checkpoints/segmenter.safetensors", "checkpoints/segmenter.json",
            "checkpoints/student.safetensors"} <= bundled()


def test_the_dry_run_never_empties_a_folder_it_did_not_make(tmp_path, capsys):
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    assert deploy_main(["--dry-run", "--out", str(precious)]) == 1
    assert (precious / "notes.txt").exists() and "not a bundle" in capsys.readouterr().err


def test_a_bundle_a_space_would_refuse_is_reported(tmp_path):
    out = tmp_path / "space"
    build(out)
    (out / ".gitattributes").write_text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")  # PNGs left out
    (out / "data").mkdir()
    (out / "data" / "sprites.npz").write_bytes(b"0" * 100)
    problems = "\n".join(check(out))
    assert "assets/gallery/001-front-0.png" in problems and "data/sprites.npz" in problems


def test_the_space_requirements_change_only_where_torch_comes_from_on_this_machine(tmp_path):
    build(tmp_path / "space")
    space = (tmp_path / "space" / "requirements.txt").read_text()
    local = local_requirements(space)
    assert "download.pytorch.org" not in local and "torch==2.14.1\n" in local and "torchvision==0.29.1\n" in local
    changed = set(space.splitlines()) ^ set(local.splitlines())
    assert changed == {CPU_TORCH_INDEX, "torch==2.14.1+cpu", "torchvision==0.29.1+cpu", "torch==2.14.1",
                       "torchvision==0.29.1"}


@pytest.mark.timeout(1500)  # a fresh environment with torch: about 2 minutes here, its own limit 15
def test_a_simulated_space_installs_its_own_requirements_and_serves_a_task_read_only(tmp_path):
    """The bundle copied to a fresh read-only folder, a fresh virtual environment from its requirements.txt
    (this machine's package sources), `python app.py` from it, one gradio_client task. Read-only permissions
    do not stop root (CI runs as root), so `simulate` also checks that serving wrote nothing into the Space.
    The environment (~6 GB) is removed at the end."""
    work = tmp_path / "simulated"
    work.mkdir()
    try:
        measured = simulate(work)
    finally:
        if (work / "space").exists():
            set_writable(work / "space", True)
        shutil.rmtree(work, ignore_errors=True)
    # 3 classes of 2 supports and 1 query each
    assert measured["torch"].startswith("2.14.1") and measured["predictions"] == 3 and len(measured["classes"]) == 3
