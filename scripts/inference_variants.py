"""Test-time variants the page does not use, measured on the **val** species (val backgrounds) so that the
choice is on record (docs/photo-gap.md). Each is compared with the page's classifier (`page`: centred
embeddings, photo-ready prototypes, the card's mirror averaging) on the clean, photo and photo-both tracks,
1- and 5-shot. The novel species and the test backgrounds play no part.

- `zoom 0.85`: a picture the page takes for a photo (`images.is_photo`) is embedded as the normalised mean
  of itself and its centre crop (85% of the side, resized back), the sprite a little larger;
- `zoom 0.8 x5`: the same with five crops of 80% (centre and corners);
- `align queries` (transductive): each episode's queries are shifted so that their mean is the supports'
  mean, a correction of the shift between clean supports and photo queries;
- `centre each side` (transductive): supports (and their photo-like views) and queries are each centred on
  their own mean instead of the base species';
- `photo mean`: a picture the page takes for a photo, and the supports' photo-like views, are centred on the
  mean embedding of base-species sprites rendered like photos with the *training* backgrounds (of 3,000
  rendered, those taken for photos) instead of the base sprites' mean: a shift of the photos' embeddings, learnt
  without the episode's pictures.

(Photo-ready prototypes for photo supports, rendered from their cut-outs, are `cut views` in
scripts/cut_out_check.py.)

The transductive two read the episode's queries together, so they assume many queries spread over the
classes, as the benchmark's 15 per class are; a visitor's queries need not be.

    python scripts/inference_variants.py --model student [--episodes 300] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pokedemo.bench import model_embedder, track_images, view_embedder  # noqa: E402
from pokedemo.data.dataset import SpriteDataset, split_species  # noqa: E402
from pokedemo.fewshot import centre, classify, episode_accuracies, mean_ci95  # noqa: E402
from pokedemo.tracks import (SUPPORT_VIEWS, photo_flags, render_pictures, track_accuracies, track_sampler,  # noqa: E402
                             track_views)

TRACKS = ("clean", "photo", "photo-both")
BASE_PHOTOS = 3000   # base sprites rendered like photos for the `photo mean`


def crop_boxes(side: float, corners: bool) -> list[tuple[float, float, float, float]]:
    """Crops (left, top, right, bottom, as fractions of the picture) of `side`: the centre, and the corners."""
    centres = [(0.5, 0.5)] + ([(x, y) for x in (side / 2, 1 - side / 2) for y in (side / 2, 1 - side / 2)]
                              if corners else [])
    return [(x - side / 2, y - side / 2, x + side / 2, y + side / 2) for x, y in centres]


def zoomed(embed, boxes):
    """`embed` with photos embedded as the normalised mean of the picture and its crops (`boxes`)."""
    def embed_zoomed(images: np.ndarray) -> torch.Tensor:
        embeddings = embed(images).clone()
        flags = photo_flags(images)
        if not flags.any():
            return embeddings
        total = embeddings[flags]
        for box in boxes:
            crops = []
            for image in images[flags.numpy()]:
                picture, size = Image.fromarray(image), image.shape[0]
                crop = picture.crop(tuple(round(v * size) for v in box))
                crops.append(np.asarray(crop.resize((size, size), Image.Resampling.LANCZOS)))
            total = total + embed(np.stack(crops))
        embeddings[flags] = F.normalize(total, dim=-1)
        return embeddings
    return embed_zoomed


def page_views(cache: dict, track: str) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(support views (K, N, D), photo flags (N,)) as `track_accuracies` used them on `track` (None, None where
    the page uses none: sprite queries, or photo supports), from the embeddings it left in `cache`."""
    supports_view, queries_view = track_views(track)
    photos = cache.get(f"{queries_view}_flags") if supports_view == "clean" else None
    return (cache.get("views"), photos) if photos is not None and bool(photos.any()) else (None, None)


def transductive(data, track: str, n_shot: int, episodes: int, cache: dict, mean, move) -> list[float]:
    """Per-episode accuracy of the page's classifier on the embeddings `track_accuracies` left in `cache` (its
    photo-ready prototypes included), each episode's embeddings first moved together by
    `move(supports, queries, views, mean) -> (supports, queries, views, centring)`."""
    sampler = track_sampler(data, track, n_shot, episodes, 0)
    supports_view, queries_view = track_views(track)
    views, photos = page_views(cache, track)
    n_way, n_query = sampler.config.n_way, sampler.config.n_query
    support_labels = torch.arange(n_way).repeat_interleave(n_shot)
    query_labels = torch.arange(n_way).repeat_interleave(n_query)
    accuracies = []
    for support, query, _ in sampler:
        s, q = cache[supports_view][support], cache[queries_view][query]
        v = views[:, support] if views is not None else None
        s, q, v, centring = move(s, q, v, mean)
        probabilities = classify(s, support_labels, q, centring, support_views=v,
                                 photo_queries=photos[query] if v is not None else None)
        accuracies.append((probabilities.argmax(dim=1) == query_labels).float().mean().item())
    return accuracies


def align_queries(s, q, v, mean):
    """Transductive: the episode's queries shifted so that their mean is the supports' mean."""
    return s, F.normalize(q - q.mean(0) + s.mean(0), dim=-1), v, mean


def centre_each_side(s, q, v, mean):
    """Transductive: supports (with their views) and queries each centred on their own mean."""
    views = F.normalize(v - v.mean(1, keepdim=True), dim=-1) if v is not None else None
    return F.normalize(s - s.mean(0), dim=-1), F.normalize(q - q.mean(0), dim=-1), views, None


def photo_mean_tables(embed, cache: dict, mean) -> tuple[dict, torch.Tensor]:
    """The page's embeddings (`cache`) centred as the `photo mean` variant does: (tables, views), already centred."""
    base = SpriteDataset.load().subset(split_species()["base"])
    pick = np.random.default_rng(0).choice(len(base), min(BASE_PHOTOS, len(base)), replace=False)
    rendered = render_pictures(base.images[pick], base.alpha[pick], "train", 77)
    photo_mean = embed(rendered)[photo_flags(rendered)].mean(dim=0)
    flags = cache["photo_flags"]                  # which of the photo tracks' pictures the page takes for photos
    photo = torch.where(flags[:, None], centre(cache["photo"], photo_mean), centre(cache["photo"], mean))
    return {"clean": centre(cache["clean"], mean), "photo": photo}, centre(cache["views"], photo_mean)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="student", help="teacher | student | paper-student")
    parser.add_argument("--checkpoint", type=Path, help="default: the shipped checkpoint of --model")
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = track_images(SpriteDataset.load().subset(split_species()["val"]))
    embed, mean, _ = model_embedder(args.model, args.checkpoint, True)
    rows, rendered = [], {}

    def record(variant: str, track: str, n_shot: int, accuracies: list[float]) -> None:
        accuracy, ci95 = mean_ci95(accuracies)
        rows.append({"model": args.model, "checkpoint": str(args.checkpoint or "shipped"), "variant": variant,
                     "split": "val", "track": track, "n_shot": n_shot, "episodes": args.episodes,
                     "accuracy": accuracy, "ci95": ci95})
        print(f"{variant:>16} {track:>10} {n_shot}-shot: {100 * accuracy:.2f} +- {100 * ci95:.2f}", flush=True)

    page_cache: dict = {}
    for variant, embedder in (("page", embed), ("zoom 0.85", zoomed(embed, crop_boxes(0.85, False))),
                              ("zoom 0.8 x5", zoomed(embed, crop_boxes(0.8, True)))):
        cache = page_cache if variant == "page" else dict(rendered)   # the pictures are rendered once
        for track in TRACKS:
            for n_shot in (1, 5):
                record(variant, track, n_shot, track_accuracies(embedder, data, track, n_shot, args.episodes, 0,
                                                                mean, pool="val", cache=cache, views=SUPPORT_VIEWS,
                                                                view_embed=view_embedder(embed)))
        rendered = {k: v for k, v in page_cache.items() if k in ("photo_images", "view_images")}
    for variant, move in (("align queries", align_queries), ("centre each side", centre_each_side)):
        for track in TRACKS:
            for n_shot in (1, 5):
                record(variant, track, n_shot, transductive(data, track, n_shot, args.episodes, page_cache, mean, move))
    tables, views = photo_mean_tables(embed, page_cache, mean)        # centred already: no mean below
    for track in TRACKS:
        supports_view, queries_view = track_views(track)
        photos = page_views(page_cache, track)[1]
        for n_shot in (1, 5):
            record("photo mean", track, n_shot, episode_accuracies(
                tables[supports_view], track_sampler(data, track, n_shot, args.episodes, 0),
                query_embeddings=tables[queries_view], support_views=views if photos is not None else None,
                photo_queries=photos))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
