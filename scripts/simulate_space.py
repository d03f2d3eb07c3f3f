"""A Hugging Face Space, simulated on this machine: the dry-run bundle copied to a fresh folder and made
read-only, a fresh virtual environment made from the bundle's own requirements.txt, `python app.py` started
from it, and one few-shot task sent with gradio_client.

    python scripts/simulate_space.py [--work DIR] [--keep]

The only change to the bundle's requirements is where torch comes from: the Space takes the CPU build from
PyTorch's wheel index, which this machine cannot reach, so here the same versions come from this machine's
package sources (`local_requirements`; that build runs on the CPU too, and the app is told to use the CPU,
as on a CPU Space, even where this machine has a GPU). Everything else is installed as the Space would.
NUMBA_CACHE_DIR and GRADIO_TEMP_DIR are left to the app's own defaults (the system's temporary folder), as
on a Space. Python is this machine's (the Space card asks for 3.11). PYTHONDONTWRITEBYTECODE keeps Python
from trying to write its bytecode caches next to the code: root (as in CI) could, and the check that
serving wrote nothing into the folder would then fail for Python's sake, not the app's.
"""
from __future__ import annotations

import argparse
import json
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts.deploy_space import CPU_TORCH_INDEX, build, check  # noqa: E402
from scripts.serve import gallery_task, start_server  # noqa: E402

INSTALL_TIMEOUT_S = 900


def local_requirements(requirements: str) -> str:
    """The Space's requirements as this machine's package sources can serve them: without PyTorch's CPU
    index and the `+cpu` label of torch and torchvision (the same versions). ValueError if anything else
    would have to change."""
    lines = []
    for line in requirements.splitlines():
        if line.strip() == CPU_TORCH_INDEX:
            continue
        if line.startswith(("torch==", "torchvision==")):
            if not line.endswith("+cpu"):
                raise ValueError(f"expected a +cpu pin in the Space's requirements, got '{line}'")
            line = line.removesuffix("+cpu")
        lines.append(line)
    return "\n".join(lines) + "\n"


def _tree(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def set_writable(folder: Path, writable: bool) -> None:
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def simulate(work: Path) -> dict:
    """Build, install, serve one task; returns what was measured. RuntimeError says what failed."""
    from gradio_client import Client, handle_file

    bundle, space, venv = work / "bundle", work / "space", work / "venv"
    build(bundle)
    problems = check(bundle)
    if problems:
        raise RuntimeError("the bundle has problems: " + "; ".join(problems))
    shutil.copytree(bundle, space)
    set_writable(space, False)
    before = _tree(space)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    requirements = work / "requirements-local.txt"
    requirements.write_text(local_requirements((space / "requirements.txt").read_text()))
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "-r",
                              str(requirements)], capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    if install.returncode:
        raise RuntimeError(f"pip install -r requirements.txt failed:\n{install.stderr[-3000:]}")
    installed = time.perf_counter() - started
    process, url, start_s = start_server(root=space, python=str(venv / "bin" / "python"),
                                         env={"PYTHONDONTWRITEBYTECODE": "1", "POKEDEMO_DEVICE": "cpu",
                                              "CUDA_VISIBLE_DEVICES": ""})
    try:
        from pokedemo.data.gallery import Gallery

        paths, labels, queries, names = gallery_task(Gallery(space / "assets" / "gallery"), seed=3, n_way=3, n_shot=2,
                                                     n_query=1)
        answer = Client(url, verbose=False).predict([handle_file(p) for p in paths], labels,
                                                    [handle_file(q) for q in queries], 2, False,
                                                    api_name="/classify")
    finally:
        process.terminate()
        process.wait(10)
    if answer["classes"] != names or len(answer["predictions"]) != len(queries):
        raise RuntimeError(f"the Space's answer does not fit the task: {answer}")
    written = sorted(set(_tree(space).items()) ^ set(before.items()))
    if written:
        raise RuntimeError(f"the page wrote into its own read-only folder: {written[:5]}")
    torch_version = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch; print(torch.__version__)"],
                                   capture_output=True, text=True, check=True).stdout.strip()
    return {"install_s": round(installed, 1), "start_s": round(start_s, 1), "torch": torch_version,
            "classes": answer["classes"], "predictions": len(answer["predictions"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, help="a new folder for the bundle, the Space and its environment "
                        "(default: a temporary folder, removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (it holds a ~6 GB environment)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="pokedemo-simulated-space-"))
    work.mkdir(parents=True, exist_ok=True)
    if any(work.iterdir()):
        print(f"error: {work} is not empty", file=sys.stderr)
        return 1
    try:
        print(json.dumps(simulate(work)))
        return 0
    except (RuntimeError, subprocess.SubprocessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        if (work / "space").exists():
            set_writable(work / "space", True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
