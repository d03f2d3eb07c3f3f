"""Robustness tracks: the same few-shot protocol on pictures that are not sprites on white.

- `clean`:      supports and queries as prepared (today's protocol);
- `art`:        supports only from the animated sprites, queries only the dream-world art (another
                drawing style of the same species); a species has one art picture (two with its
                female art), so an episode has **1 query per class**;
- `photo`:      clean supports; queries rendered like phone photos (`render`, the pool's own
                backgrounds), then preprocessed as the page preprocesses an upload (`to_model_image`);
- `photo-both`: supports rendered too.
The benchmark renders with the `test` pool, model selection during training with the `val` pool.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .config import EpisodeConfig
from .data.dataset import EpisodeSampler
from .fewshot import episode_accuracies
from .images import is_photo, to_model_image
from .models import to_tensor
from .render import make_backgrounds, render

TRACKS = ("clean", "art", "photo", "photo-both")
BANK_SIZE, BANK_SIDE = 512, 80
SUPPORT_VIEWS = 4   # photo-like views of each support (with alpha) behind the photo-ready prototypes


@dataclass
class TrackImages:
    """What the tracks need of a set of pictures. images: (N, S, S, 3) uint8 over white; alpha: (N, S, S)
    uint8; species, source: (N,); is_art: (N,) bool or None (no art: the art track is skipped)."""

    images: np.ndarray
    alpha: np.ndarray
    species: np.ndarray
    source: np.ndarray
    is_art: np.ndarray | None


@lru_cache(maxsize=8)
def _bank(pool: str, side: int, seed: int) -> Tensor:
    """A pool's backgrounds, made once per (pool, side, seed) and only read afterwards (about 40 MB and, on the
    2-core CPU, a second to make; the page reads five: four for the supports' views, one for photo-like queries)."""
    return make_backgrounds(pool, BANK_SIZE, side, seed)


def render_pictures(images: np.ndarray, alpha: np.ndarray, pool: str, seed: int = 0,
                    batch_size: int = 256, backgrounds: Tensor | None = None,
                    bank_seed: int | None = None) -> np.ndarray:
    """Photo-like versions of uint8 sprites (N, S, S, 3) + alpha (N, S, S), each then preprocessed as an
    upload is; deterministic for a seed. backgrounds: a bank to draw from instead of the pool's (e.g. one
    kind of its backgrounds). bank_seed: the seed of the pool's bank (default `seed`: the benchmark's). returns
    (N, S, S, 3) uint8."""
    size = images.shape[1]
    if backgrounds is None:
        backgrounds = _bank(pool, max(BANK_SIDE, size), seed if bank_seed is None else bank_seed)
    generator = torch.Generator().manual_seed(seed)
    out = np.empty_like(images)
    for start in range(0, len(images), batch_size):
        sprites = to_tensor(images[start:start + batch_size])
        masks = torch.from_numpy(alpha[start:start + batch_size]).float()[:, None] / 255
        pictures = render(sprites, masks, backgrounds, generator).mul(255).round().to(torch.uint8)
        for k, picture in enumerate(pictures.permute(0, 2, 3, 1).numpy()):
            out[start + k] = to_model_image(Image.fromarray(picture), size)
    return out


def support_views(images: np.ndarray, alpha: np.ndarray, views: int = SUPPORT_VIEWS) -> np.ndarray:
    """(views, N, S, S, 3) uint8: each sprite rendered like a phone photo `views` times, with the **train**
    backgrounds (never the val or test ones), seeded: what photo-ready prototypes add to the supports."""
    return np.stack([render_pictures(images, alpha, "train", 1000 + k) for k in range(views)])


def view_tensor(view_images: np.ndarray) -> Tensor:
    """(K, N, S, S, 3) uint8 photo-like views (`support_views`) -> (K, N, 3, S, S) as the models take them."""
    k, n = view_images.shape[:2]
    return to_tensor(view_images.reshape(k * n, *view_images.shape[2:])).unflatten(0, (k, n))


def embed_views(model, views: Tensor) -> Tensor:
    """(K, N, 3, S, S) views (`view_tensor`) -> (K, N, D): their embeddings by `model` (an `Embedder`), without
    the photo blend (`Embedder.embed`)."""
    with torch.inference_mode():
        return model.embed(views.flatten(0, 1), blend_photos=False).unflatten(0, views.shape[:2])


def photo_flags(images: np.ndarray) -> Tensor:
    """(N,) bool: which preprocessed pictures are photos (`images.is_photo`), as the page decides."""
    return torch.tensor([is_photo(Image.fromarray(image)) for image in images], dtype=torch.bool)


def track_sampler(data: TrackImages, track: str, n_shot: int, episodes: int, seed: int = 0,
                  n_query: int = 15) -> EpisodeSampler:
    """The track's seeded 5-way episodes (the art track: 1 query per class, always art)."""
    if track not in TRACKS:
        raise ValueError(f"unknown track '{track}'; choose from {TRACKS}")
    n_way = min(5, len(np.unique(data.species)))
    if track == "art":
        if data.is_art is None:
            raise ValueError("the art track needs to know which pictures are art (sprite data only)")
        return EpisodeSampler(data.species, data.source, EpisodeConfig(n_way, n_shot, 1, episodes, seed),
                              query_only=data.is_art)
    return EpisodeSampler(data.species, data.source, EpisodeConfig(n_way, n_shot, n_query, episodes, seed))


def track_views(track: str) -> tuple[str, str]:
    """Which pictures the track's supports and queries are: "clean" or "photo" (rendered)."""
    return ("photo" if track == "photo-both" else "clean"), ("photo" if track.startswith("photo") else "clean")


def track_accuracies(embed: Callable[[np.ndarray], Tensor], data: TrackImages, track: str, n_shot: int,
                     episodes: int, seed: int = 0, mean: Tensor | None = None, pool: str = "test",
                     cache: dict | None = None, n_query: int = 15, views: int = 0,
                     view_embed: Callable[[np.ndarray], Tensor] | None = None) -> list[float]:
    """Per-episode accuracy of 5-way nearest-prototype on a track (n_query per class; the art track has 1).

    embed: uint8 images (N, S, S, 3) -> (N, D) embeddings. cache (optional dict) keeps the clean and
    rendered embeddings ("clean", "photo"), the rendered pictures ("photo_images", "view_images") and the
    photo-ready views' embeddings between calls. views: photo-like views per support for photo-ready
    prototypes (the page's method; 0: plain prototypes), applied where the supports are sprites (they
    have an alpha mask to render with) and the query is a photo (`photo_flags`). view_embed: how the views are
    embedded (default `embed`; the page leaves the photo blend out of them, `embed_views`).
    """
    sampler = track_sampler(data, track, n_shot, episodes, seed, n_query)
    cache = {} if cache is None else cache
    if "clean" not in cache:
        cache["clean"] = embed(data.images)
    if track.startswith("photo") and "photo" not in cache:
        if "photo_images" not in cache:  # the rendered pictures themselves, kept to embed again later
            cache["photo_images"] = render_pictures(data.images, data.alpha, pool, seed)
        cache["photo"] = embed(cache["photo_images"])
    supports, queries = track_views(track)
    extra = {}
    flag_key = f"{queries}_flags"
    if views and supports == "clean" and flag_key not in cache:
        cache[flag_key] = photo_flags(data.images if queries == "clean" else cache["photo_images"])
    if views and supports == "clean" and cache[flag_key].any():   # rendered and embedded only when needed
        if "view_images" not in cache or len(cache["view_images"]) != views:
            cache["view_images"] = support_views(data.images, data.alpha, views)
        if "views" not in cache:
            cache["views"] = torch.stack([(view_embed or embed)(pictures) for pictures in cache["view_images"]])
        extra = {"support_views": cache["views"], "photo_queries": cache[flag_key]}
    return episode_accuracies(cache[supports], sampler, mean, query_embeddings=cache[queries], **extra)
