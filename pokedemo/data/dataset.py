"""The prepared dataset on disk, the species table, the species splits and the episode sampler."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ..config import ASSETS_DIR, GENERATIONS, DataConfig, EpisodeConfig, data_dir


def dataset_paths(config: DataConfig, root: Path | None = None) -> tuple[Path, Path]:
    """(arrays .npz, manifest .json) for these settings inside the data folder."""
    root = root or data_dir()
    stem = f"sprites-{config.image_size}px-{config.frames_per_source}f"
    return root / f"{stem}.npz", root / f"{stem}.json"


def species_table(path: Path = ASSETS_DIR / "species.csv") -> dict[int, dict]:
    """species_id -> {"name", "generation"} for #1-649 (names from the npm package `pokemon`)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return {int(r["species_id"]): {"name": r["name"], "generation": int(r["generation"])}
                for r in csv.DictReader(handle)}


def generation_of(species_id: int) -> int:
    return next(g for g, (first, last) in enumerate(GENERATIONS, start=1) if first <= species_id <= last)


def split_species(config: DataConfig = DataConfig()) -> dict[str, list[int]]:
    """Fixed species splits: novel = #1..novel_last (Gen I), val = `val_species` drawn with a seeded
    generator from the rest, base = what is left. Depends only on the config, never on the data."""
    novel = list(range(1, config.novel_last_species + 1))
    rest = np.arange(config.novel_last_species + 1, config.last_species + 1)
    val = sorted(np.random.default_rng(config.split_seed).choice(rest, config.val_species, replace=False).tolist())
    base = sorted(set(rest.tolist()) - set(val))
    return {"base": base, "val": val, "novel": novel}


@dataclass
class SpriteDataset:
    """The prepared frames in memory. images: (N, S, S, 3) uint8 over white; alpha: (N, S, S) uint8
    (255 = sprite, 0 = background); species, source: (N,)."""

    images: np.ndarray
    alpha: np.ndarray
    species: np.ndarray
    source: np.ndarray
    manifest: dict

    @classmethod
    def load(cls, config: DataConfig = DataConfig(), root: Path | None = None) -> "SpriteDataset":
        arrays_path, manifest_path = dataset_paths(config, root)
        if not manifest_path.exists():
            raise FileNotFoundError(f"no dataset at {arrays_path}: run `python -m pokedemo.data prepare` first")
        manifest = json.loads(manifest_path.read_text())
        if "alpha" not in manifest.get("arrays", []):
            raise FileNotFoundError(f"{arrays_path} was made by an older pokedemo (no alpha masks): "
                                    "run `python -m pokedemo.data prepare` again")
        with np.load(arrays_path, allow_pickle=False) as arrays:
            return cls(arrays["images"], arrays["alpha"], arrays["species"].astype(np.int64),
                       arrays["source"].astype(np.int64), manifest)

    def subset(self, species: list[int]) -> "SpriteDataset":
        keep = np.isin(self.species, species)
        return SpriteDataset(self.images[keep], self.alpha[keep], self.species[keep], self.source[keep], self.manifest)

    @cached_property
    def source_kind(self) -> list[str]:
        return [s["kind"] for s in self.manifest["sources"]]

    def __len__(self) -> int:
        return len(self.images)


class EpisodeSampler:
    """Seeded n_way / n_shot / n_query episodes that are **source-disjoint** within each class.

    For each class, its sources are shuffled and split: the first 2/5 (at least one) feed the
    support set, the rest the queries, so a query is never a neighbouring frame of a support
    image. Species that cannot fill such a split are left out (and listed in `skipped`).
    """

    def __init__(self, species: np.ndarray, source: np.ndarray, episode: EpisodeConfig = EpisodeConfig(),
                 query_only: np.ndarray | None = None):
        """query_only: (N,) bool, optional: those images are the only queries and never supports (the
        art track: supports from the animated sprites, queries from the dream-world art)."""
        self.config = episode
        self.rng = np.random.default_rng(episode.seed)
        self.by_species: dict[int, dict[int, np.ndarray] | tuple[np.ndarray, np.ndarray]] = {}
        self.skipped: list[int] = []
        for species_id in np.unique(species):
            indices = np.flatnonzero(species == species_id)
            if query_only is not None:
                pools = indices[~query_only[indices]], indices[query_only[indices]]
                if len(pools[0]) >= episode.n_shot and len(pools[1]) >= episode.n_query:
                    self.by_species[int(species_id)] = pools
                else:
                    self.skipped.append(int(species_id))
                continue
            groups = {int(s): indices[source[indices] == s] for s in np.unique(source[indices])}
            if len(groups) >= 2 and len(indices) >= episode.n_shot + episode.n_query:
                self.by_species[int(species_id)] = groups
            else:
                self.skipped.append(int(species_id))
        if len(self.by_species) < episode.n_way:
            raise ValueError(f"only {len(self.by_species)} species have enough images from 2+ sources for "
                             f"{episode.n_shot}-shot {episode.n_query}-query episodes; n_way is {episode.n_way}")

    def _split_class(self, groups) -> tuple[np.ndarray, np.ndarray]:
        n_shot, n_query = self.config.n_shot, self.config.n_query
        if isinstance(groups, tuple):  # fixed support and query pools
            return self.rng.choice(groups[0], n_shot, replace=False), self.rng.choice(groups[1], n_query, replace=False)
        keys = list(groups)
        for _ in range(100):
            order = self.rng.permutation(keys)
            cut = max(1, len(order) * 2 // 5)
            support_pool = np.concatenate([groups[k] for k in order[:cut]])
            query_pool = np.concatenate([groups[k] for k in order[cut:]])
            if len(support_pool) >= n_shot and len(query_pool) >= n_query:
                return (self.rng.choice(support_pool, n_shot, replace=False),
                        self.rng.choice(query_pool, n_query, replace=False))
        raise ValueError(f"cannot split sources {[len(g) for g in groups.values()]} into "
                         f"{n_shot} support and {n_query} query images")

    def sample(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One episode: (support_indices (n_way*n_shot,), query_indices (n_way*n_query,),
        classes (n_way,) species ids). Support and query are class-major: label = position // n."""
        classes = self.rng.choice(sorted(self.by_species), self.config.n_way, replace=False)
        support, query = zip(*(self._split_class(self.by_species[int(c)]) for c in classes))
        return np.concatenate(support), np.concatenate(query), classes

    def __iter__(self):
        for _ in range(self.config.episodes):
            yield self.sample()
