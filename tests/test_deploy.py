"""scripts/deploy_space.py offline: the bundle a Space gets, its checks, and the page served from a
read-only copy of it."""
from __future__ import annotations

import stat
import sys
from pathlib import Path

from gradio_client import Client, handle_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts.deploy_space import build, check, lfs_patterns, main as deploy_main  # noqa: E402
from scripts.serve import gallery_task, start_server  # noqa: E402


def test_the_dry_run_bundle_holds_what_the_page_loads_and_nothing_else(tmp_path):
    out = tmp_path / "space"
    assert deploy_main(["--dry-run", "--out", str(out)]) == 0
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert {"app.py", "README.md", "requirements.txt", ".gitattributes", "checkpoints/teacher.safetensors",
            "checkpoints/student.safetensors", "assets/gallery/index.csv", "assets/gallery/alpha.npz"} <= files
    assert not any(f.startswith(("data/", "runs/", "tests/", "scripts/")) or "paper-student" in f for f in files)
    requirements = (out / "requirements.txt").read_text()
    assert "download.pytorch.org/whl/cpu" in requirements and "torch==2.14.1+cpu" in requirements
    assert "resvg" not in requirements and "pytest" not in requirements and "-r " not in requirements
    assert "*.safetensors" in lfs_patterns(out / ".gitattributes")


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


def _tree(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_the_page_serves_a_task_from_a_read_only_copy_of_the_bundle(tmp_path):
    """Read-only permissions do not stop root (CI runs as root), so the test also checks that serving a
    task wrote nothing into the bundle."""
    out = tmp_path / "space"
    build(out)
    before = _tree(out)
    for path in [out, *out.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    process, url, _ = start_server(root=out, env={"PYTHONDONTWRITEBYTECODE": "1"})
    try:
        from pokedemo.config import ASSETS_DIR
        from pokedemo.data.gallery import Gallery

        paths, labels, queries, names = gallery_task(Gallery(ASSETS_DIR / "gallery"), seed=3, n_way=3, n_shot=2,
                                                     n_query=1)
        out_json = Client(url, verbose=False).predict([handle_file(p) for p in paths], labels,
                                                      [handle_file(q) for q in queries], 2, False,
                                                      api_name="/classify")
        assert out_json["classes"] == names and len(out_json["predictions"]) == 3
        assert _tree(out) == before, "the page wrote into its own folder"
    finally:
        process.terminate()
        process.wait(10)
        for path in [out, *out.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
