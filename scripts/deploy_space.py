"""Deploy the page to a Hugging Face Space: exactly the files the page loads, big and binary files
through LFS/Xet.

    python scripts/deploy_space.py --repo USER/NAME             # build, check, upload
    python scripts/deploy_space.py --dry-run [--out build/space]  # build and check only, offline

The token comes from the environment (HF_TOKEN) or `huggingface-cli login`, never from a file in the
repository. The upload is `huggingface_hub`'s `upload_folder`, which sends large files through Xet.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What the page loads (app.py and what it reads at start-up), and the Space's card (README.md).
BUNDLE = ["app.py", "README.md", "requirements.txt", "pokedemo/**/*.py",
          "checkpoints/teacher.safetensors", "checkpoints/teacher.json", "checkpoints/student.safetensors",
          "checkpoints/student.json", "assets/gallery/*", "assets/gallery-embeddings.safetensors", "assets/species.csv",
          "assets/val_map.json",
          "assets/screenshot.png", "assets/page.css", "assets/page.js", "assets/how/*.png",
          "docs/benchmarks.json", "docs/how-it-works.md", "docs/how-it-works-technical.md"]
NEVER = ["data/*", "runs/*", "*.npz.tmp", "**/__pycache__/*", "*.pyc"]   # training data, runs, caches
SPACE_LIMIT_BYTES = 10 * 1024 * 1024      # Hugging Face refuses larger files outside LFS/Xet
BINARY_SUFFIXES = {".safetensors", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".npz"}


def lfs_patterns(gitattributes: Path) -> list[str]:
    """The patterns .gitattributes routes through LFS (filter=lfs)."""
    return [line.split()[0] for line in gitattributes.read_text().splitlines()
            if line.strip() and not line.startswith("#") and "filter=lfs" in line]


def named_by_cards(root: Path = ROOT) -> list[str]:
    """What a shipped card names beside its checkpoint and the page then loads: the segmenter of a `photo_blend`."""
    named = []
    for card in ("teacher", "student"):
        blend = json.loads((root / "checkpoints" / f"{card}.json").read_text()).get("photo_blend")
        if blend:
            weights = Path("checkpoints") / blend["segmenter"]
            named += [str(weights), str(weights.with_suffix(".json"))]
    return named


def bundle_files(root: Path = ROOT) -> list[Path]:
    files = sorted({p for pattern in BUNDLE + named_by_cards(root) for p in root.glob(pattern) if p.is_file()})
    return [p for p in files if not any(fnmatch.fnmatch(str(p.relative_to(root)), n) for n in NEVER)]


MARKER = ".pokedemo-space-bundle"
# Only the Space's copy routes binaries through LFS: this repository's history holds them as plain blobs,
# and the same rules here would make every clone with git-lfs installed show them as modified.
GITATTRIBUTES = ROOT / "scripts" / "space.gitattributes"


def build(out: Path, root: Path = ROOT) -> list[Path]:
    """Copy the bundle into `out` (a new or empty folder, or an earlier bundle, which is replaced);
    returns the copied files, relative."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise ValueError(f"{out} is not empty and is not a bundle made by this script: choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by scripts/deploy_space.py; replaced at the next build\n")
    shutil.copy2(GITATTRIBUTES, out / ".gitattributes")
    copied = [Path(".gitattributes")]
    for path in bundle_files(root):
        relative = path.relative_to(root)
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, out / relative)
        copied.append(relative)
    requirements = out / "requirements.txt"
    requirements.write_text(space_requirements(requirements.read_text()))
    return copied


CPU_TORCH_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"


def space_requirements(requirements: str) -> str:
    """The Space's requirements: the page's own, with torch and torchvision as PyTorch's CPU builds (the
    default wheels would bring gigabytes of CUDA libraries onto a CPU machine)."""
    lines = [CPU_TORCH_INDEX]
    for line in requirements.splitlines():
        name = line.split("==")[0].strip()
        lines.append(f"{line.strip()}+cpu" if name in ("torch", "torchvision") and "==" in line else line)
    return "\n".join(lines) + "\n"


def check(out: Path) -> list[str]:
    """Problems a Space would refuse or trip over: [] when the bundle is fine."""
    problems = []
    for missing in ("app.py", "README.md", "requirements.txt", ".gitattributes"):
        if not (out / missing).exists():
            problems.append(f"{missing} is missing")
    if problems:
        return problems
    patterns = lfs_patterns(out / ".gitattributes")
    for path in sorted(p for p in out.rglob("*") if p.is_file() and p.name != MARKER):
        relative = str(path.relative_to(out))
        in_lfs = any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(path.name, p) for p in patterns)
        if (path.stat().st_size > SPACE_LIMIT_BYTES or path.suffix.lower() in BINARY_SUFFIXES) and not in_lfs:
            problems.append(f"{relative} ({path.stat().st_size:,} bytes, binary or over 10 MB) is not routed "
                            "through LFS by .gitattributes")
        if relative.startswith(("data/", "runs/")):
            problems.append(f"{relative} is training data or a run: it must not be uploaded")
    for line in (out / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith(("#", "-")) and "==" not in line:
            problems.append(f"requirements.txt: '{line.strip()}' is not pinned")
        if line.startswith("-r"):
            problems.append(f"requirements.txt: '{line.strip()}' pulls in more than the page's own needs")
    if CPU_TORCH_INDEX not in (out / "requirements.txt").read_text():
        problems.append("requirements.txt would install torch's CUDA build on a CPU Space")
    card = (out / "README.md").read_text(encoding="utf-8")
    if not card.startswith("---") or "sdk: gradio" not in card or "app_file: app.py" not in card:
        problems.append("README.md lacks the Space card (--- sdk: gradio, app_file: app.py ---)")
    return problems


def upload(out: Path, repo: str) -> str:
    from huggingface_hub import HfApi

    api = HfApi()  # token: HF_TOKEN or the `huggingface-cli login` cache
    api.create_repo(repo, repo_type="space", space_sdk="gradio", exist_ok=True)
    info = api.upload_folder(repo_id=repo, repo_type="space", folder_path=out, ignore_patterns=[MARKER],
                             commit_message="Deploy pokedemo", delete_patterns=["*"])
    return str(info.commit_url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", help="the Space, USER/NAME")
    parser.add_argument("--dry-run", action="store_true", help="build and check the bundle; upload nothing")
    parser.add_argument("--out", type=Path, help="where to build the bundle (default: a temporary folder)")
    args = parser.parse_args(argv)
    if not args.dry_run and not args.repo:
        parser.error("give --repo USER/NAME, or --dry-run")
    out = args.out or Path(tempfile.mkdtemp(prefix="pokedemo-space-"))
    try:
        files = build(out)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    problems = check(out)
    size = sum((out / f).stat().st_size for f in files)
    print(f"bundle: {len(files)} files, {size / 1e6:.1f} MB in {out}")
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    if problems:
        return 1
    if args.dry_run:
        print("dry run: checked, nothing uploaded")
        return 0
    print(f"uploaded: {upload(out, args.repo)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
