"""The app's gallery: a few preprocessed frames per source of every novel species, as PNG + index."""
from __future__ import annotations

import csv
import hashlib
import shutil
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from ..images import load_image, to_model_image
from .dataset import SpriteDataset, species_table


def export_gallery(dataset: SpriteDataset, out: Path, frames_per_source: int = 2) -> Path:
    """Write out/<species>-<kind>-<k>.png, out/index.csv (file, species_id, name, source) and
    out/alpha.npz (file names and their alpha masks, so the page can render a picture photo-like)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    names = species_table()
    rows, masks = [], []
    for source_id in np.unique(dataset.source):
        indices = np.flatnonzero(dataset.source == source_id)
        picks = indices[np.linspace(0, len(indices) - 1, min(frames_per_source, len(indices))).round().astype(int)]
        kind = dataset.source_kind[source_id]
        for k, index in enumerate(np.unique(picks)):
            species_id = int(dataset.species[index])
            file = f"{species_id:03d}-{kind}-{k}.png"
            Image.fromarray(dataset.images[index]).save(out / file, optimize=True)
            masks.append(dataset.alpha[index])
            rows.append({"file": file, "species_id": species_id, "name": names[species_id]["name"], "source": kind})
    with open(out / "index.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "species_id", "name", "source"])
        writer.writeheader()
        writer.writerows(rows)
    np.savez_compressed(out / "alpha.npz", files=np.asarray([r["file"] for r in rows]), alpha=np.stack(masks))
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"wrote {len(rows)} images of {len({r['species_id'] for r in rows})} species to {out} ({size / 1e6:.1f} MB)")
    return out


@dataclass(frozen=True)
class GalleryItem:
    file: str
    species_id: int
    name: str
    source: str


class Gallery:
    """The exported gallery (read-only): lookups by file name, species, and seeded random tasks."""

    def __init__(self, folder: Path):
        self.folder = Path(folder).resolve()
        with open(self.folder / "index.csv", newline="", encoding="utf-8") as handle:
            listed = [GalleryItem(r["file"], int(r["species_id"]), r["name"], r["source"]) for r in csv.DictReader(handle)]
        self.by_file = {item.file: item for item in listed}
        # content -> item: a picture is the gallery's when its bytes are, whatever it is called or where it is.
        # Some exported frames are the same picture (an animation's first and last frame): one picture, one
        # item, so a task never holds the same picture twice (as a support and a query, say).
        self.by_digest: dict[bytes, GalleryItem] = {}
        for item in listed:
            self.by_digest.setdefault(hashlib.sha256((self.folder / item.file).read_bytes()).digest(), item)
        unique = set(self.by_digest.values())
        self.items = [item for item in listed if item in unique]
        self.by_name: dict[str, list[GalleryItem]] = {}
        for item in self.items:
            self.by_name.setdefault(item.name, []).append(item)

    @property
    def species_names(self) -> list[str]:
        return sorted(self.by_name, key=lambda name: self.by_name[name][0].species_id)

    def path(self, file: str) -> Path:
        """The on-disk path of a gallery file, refusing anything that is not one (../, absolute paths)."""
        if file not in self.by_file:
            raise ValueError(f"'{file}' is not an image of the gallery")
        path = (self.folder / file).resolve()
        if path.parent != self.folder:
            raise ValueError(f"'{file}' is outside the gallery")
        return path

    def identify(self, path: str | Path) -> GalleryItem | None:
        """The gallery item whose file has the same bytes as `path` (a gallery picture copied by Gradio, or
        uploaded unchanged), else None. Never by name: an upload called 025-front-0.png is an upload."""
        try:
            stat = Path(path).stat()
        except OSError:
            return None
        return self._identify(str(path), stat.st_size, stat.st_mtime_ns)

    @lru_cache(maxsize=4096)
    def _identify(self, path: str, size: int, mtime_ns: int) -> GalleryItem | None:
        """identify() for one version of a file (its size and time): a run asks for each picture's species,
        mask and keep-or-delete, and each file is read and hashed once."""
        try:
            data = Path(path).read_bytes() if size < 1 << 20 else b""
        except OSError:
            return None
        return self.by_digest.get(hashlib.sha256(data).digest())

    @lru_cache(maxsize=None)  # at most one entry an item and size: the gallery is fixed
    def model_image(self, file: str, size: int) -> np.ndarray:
        """The item's picture as a task reads it (`images.to_model_image`), decoded once; read-only."""
        image = to_model_image(load_image(self.path(file)), size)
        image.setflags(write=False)
        return image

    def is_own_file(self, path: str | Path) -> bool:
        """Whether `path` resolves to a file inside the gallery folder (never to be deleted)."""
        return Path(path).resolve().parent == self.folder

    @cached_property
    def _alpha(self) -> dict[str, np.ndarray]:
        """Every item's mask, read once; empty when the gallery was exported without masks."""
        if not (self.folder / "alpha.npz").exists():
            return {}
        with np.load(self.folder / "alpha.npz", allow_pickle=False) as arrays:
            return dict(zip(arrays["files"].tolist(), arrays["alpha"]))

    def alpha(self, item: GalleryItem) -> np.ndarray | None:
        """The item's alpha mask (S, S) uint8, or None if the gallery was exported without masks."""
        return self._alpha.get(item.file)

    def species_images(self, name: str, n: int, rng: np.random.Generator,
                       exclude_sources: set[str] = frozenset()) -> list[GalleryItem]:
        """Up to n images of a species, spread over as many sources as possible."""
        if name not in self.by_name:
            raise ValueError(f"'{name}' is not a species of the gallery")
        items = [i for i in self.by_name[name] if i.source not in exclude_sources]
        order = rng.permutation(len(items))
        # round-robin over sources so 5 shots show front, back, shiny... rather than 5 fronts
        by_source: dict[str, list[GalleryItem]] = {}
        for k in order:
            by_source.setdefault(items[k].source, []).append(items[k])
        picked, queues = [], list(by_source.values())
        while len(picked) < n and any(queues):
            for queue in queues:
                if queue and len(picked) < n:
                    picked.append(queue.pop())
        return picked

    def query_images(self, name: str, n: int, rng: np.random.Generator, used: list[GalleryItem]) -> list[GalleryItem]:
        """Up to n pictures of a species to add as queries: never one of `used` (the task's supports and
        queries), and from sources its supports do not show while there are such pictures."""
        if name not in self.by_name:
            raise ValueError(f"'{name}' is not a species of the gallery")
        taken = {item.file for item in used}
        support_sources = {item.source for item in used if item.name == name}
        free = [item for item in self.by_name[name] if item.file not in taken]
        fresh = [item for item in free if item.source not in support_sources]
        order = lambda items: [items[k] for k in rng.permutation(len(items))]
        return (order(fresh) + order([item for item in free if item.source in support_sources]))[:n]

    def random_task(self, seed: int, n_way: int = 5, n_shot: int = 5, n_query: int = 5, max_queries: int = 50
                    ) -> tuple[list[str], list[list[GalleryItem]], list[GalleryItem], list[str]]:
        """(class names, n_shot support items per class, n_query query items per class (class-major),
        notes). Exactly the asked numbers, never a picture twice; the queries of a class share no source
        (front, back, shiny, art...) with its supports wherever the species' sources allow it, otherwise a
        note says so. ValueError when too few species hold n_shot + n_query pictures."""
        if not 2 <= n_way <= len(self.species_names) or n_shot < 1 or n_query < 1:
            raise ValueError(f"a random task needs 2 to {len(self.species_names)} classes and at least one support "
                             f"and one query per class (got {n_way}, {n_shot}, {n_query})")
        if n_way * n_query > max_queries:
            raise ValueError(f"{n_way} classes x {n_query} queries = {n_way * n_query} queries; a task takes at most "
                             f"{max_queries}. Lower the queries per class or the classes.")
        need = n_shot + n_query
        eligible = [name for name in self.species_names if len(self.by_name[name]) >= need]
        if len(eligible) < n_way:
            most = max(len(items) for items in self.by_name.values())
            raise ValueError(f"the gallery has {len(eligible)} species with {need} pictures ({n_shot} support + "
                             f"{n_query} query); a {n_way}-way task needs {n_way}. Lower the shots or queries "
                             f"(the gallery holds at most {most} pictures of a species).")
        rng = np.random.default_rng(seed)
        names = [eligible[k] for k in rng.choice(len(eligible), n_way, replace=False)]
        supports, queries, notes = [], [], []
        for name in names:
            support, query, disjoint = self._split(self.by_name[name], n_shot, n_query, rng)
            supports.append(support)
            queries += query
            if not disjoint:
                notes.append(f"{name}: too few sources for queries from other sources than the supports; "
                             "its queries are other pictures of the same sources")
        return names, supports, queries, notes

    @staticmethod
    def _split(items: list[GalleryItem], n_shot: int, n_query: int, rng: np.random.Generator
               ) -> tuple[list[GalleryItem], list[GalleryItem], bool]:
        """n_shot supports and n_query queries of one species, source-disjoint when possible."""
        by_source: dict[str, list[GalleryItem]] = {}
        for item in items:
            by_source.setdefault(item.source, []).append(item)
        pick = lambda pool, n: [pool[k] for k in rng.choice(len(pool), n, replace=False)]
        for _ in range(50):
            order = [list(by_source)[k] for k in rng.permutation(len(by_source))]
            chosen, count = [], 0
            while count < n_shot and len(chosen) < len(order):
                chosen.append(order[len(chosen)])
                count += len(by_source[chosen[-1]])
            rest = [i for s in order[len(chosen):] for i in by_source[s]]
            if count >= n_shot and len(rest) >= n_query:
                return pick([i for s in chosen for i in by_source[s]], n_shot), pick(rest, n_query), True
        shuffled = pick(items, n_shot + n_query)
        return shuffled[:n_shot], shuffled[n_shot:], False
