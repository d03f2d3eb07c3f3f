"""What cutting the sprite out of a photo is worth, on the val species only: the photo tracks (1- and 5-shot, the
page's classifier) with the photos preprocessed four ways:

- `none`:      as the page preprocesses a photo (`images.to_model_image`: centre-cropped and resized), the
               model's own photo blend off (the card's `photo_blend`: this script measures it, as `blend`);
- `segmenter`: then cut out by the segmenter (`segment.cut_out`), the supports' photo-like views too;
- `blend`:     the photo kept, its embedding the normalised sum of its own and `--blend-weight` times its
               cut-out's (a second pass on every photo; where nothing is cut out, the photo's own twice);
- `oracle`:    the background whitened with the renderer's own mask (an upper bound no upload has),
               then preprocessed as a sprite on white is;
- `cut views`: photo-both only: the photos as `none`, and each support photo given photo-ready views as a
               sprite's are (`tracks.support_views`), rendered from its own cut-out (the segmenter's mask as
               its alpha), so that its prototype does not hold its own background alone; where the mask is not
               `plausible` (nothing is cut out), the photo's own embedding stands in for its views.

It renders with the **val** backgrounds and never reads the test backgrounds or the novel species.

    python scripts/cut_out_check.py --model student [--checkpoint C] [--segmenter S] [--json out.json]
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pokedemo import segment  # noqa: E402
from pokedemo.bench import model_embedder, track_images  # noqa: E402
from pokedemo.data.dataset import SpriteDataset, split_species  # noqa: E402
from pokedemo.fewshot import episode_accuracies, mean_ci95  # noqa: E402
from pokedemo.images import to_model_image, to_model_rgba  # noqa: E402
from pokedemo.render import make_backgrounds  # noqa: E402
from pokedemo.tracks import (BANK_SIDE, BANK_SIZE, SUPPORT_VIEWS, photo_flags, render_pictures,  # noqa: E402
                             support_views, track_accuracies, track_sampler)

VARIANTS = ("none", "segmenter", "blend", "oracle", "cut views")


def oracle_pictures(images: np.ndarray, alpha: np.ndarray, bank: torch.Tensor, seed: int = 0) -> np.ndarray:
    """The photo tracks' pictures (the same draws as `render_pictures`) with the background whitened by the
    renderer's mask, then preprocessed as a sprite on white is."""
    generator = torch.Generator().manual_seed(seed)
    out = np.empty_like(images)
    for start in range(0, len(images), 256):
        pictures, masks = segment.rendered_batch(images[start:start + 256], alpha[start:start + 256], bank, generator)
        whitened = (pictures * masks + (1 - masks)).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for k, picture in enumerate(whitened):
            out[start + k] = to_model_image(Image.fromarray(picture), images.shape[1])
    return out


def named(path: Path) -> str:
    """A file as the JSON names it: relative to the repository where it lies inside it (not this clone's path)."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def cut_views(photos: np.ndarray, segmenter) -> tuple[np.ndarray, np.ndarray]:
    """(SUPPORT_VIEWS, N, S, S, 3) photo-ready views of photos, rendered from their cut-outs (mask as alpha), and
    (N,) bool: which masks were `plausible` (the others' views are not used)."""
    masks = segment.sprite_masks(photos, segmenter)
    pairs = [to_model_rgba(Image.fromarray(np.dstack([photo, mask]), "RGBA"), photos.shape[1])
             for photo, mask in zip(photos, masks)]
    views = support_views(np.stack([rgb for rgb, _ in pairs]), np.stack([alpha for _, alpha in pairs]))
    return views, np.array([segment.plausible(mask) for mask in masks])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="student", help="teacher | student | paper-student")
    parser.add_argument("--checkpoint", type=Path, help="default: the shipped checkpoint of --model")
    parser.add_argument("--segmenter", type=Path, default=segment.SEGMENTER, help="default: %(default)s")
    parser.add_argument("--blend-weight", type=float, default=0.3, help="the cut-out's weight in `blend`")
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    segmenter = segment.load_segmenter(args.segmenter)
    data = track_images(SpriteDataset.load().subset(split_species()["val"]))
    embed, mean, _ = model_embedder(args.model, args.checkpoint, True, photo_blend=False)   # its own blend row
    bank = make_backgrounds("val", BANK_SIZE, max(BANK_SIDE, data.images.shape[1]), 0)
    clean, photos = embed(data.images), render_pictures(data.images, data.alpha, "val", backgrounds=bank)
    views = support_views(data.images, data.alpha)
    cut = segment.cut_out(photos, segmenter)
    page = {"clean": clean, "photo_images": photos, "view_images": views, "photo": embed(photos)}
    rows = []
    for variant in VARIANTS:
        cache = page if variant == "none" else {"clean": clean, "photo_images": photos, "view_images": views}
        if variant == "segmenter":
            cache["photo_images"] = cut
            cache["view_images"] = np.stack([segment.cut_out(v, segmenter) for v in views])
        elif variant == "blend":
            cache = {**page, "photo": F.normalize(page["photo"] + args.blend_weight * embed(cut), dim=-1)}
        elif variant == "oracle":
            cache["photo_images"] = oracle_pictures(data.images, data.alpha, bank)
        elif variant == "cut views":
            rendered, plausible = cut_views(photos, segmenter)
            extra = torch.stack([embed(pictures) for pictures in rendered])
            extra[:, ~torch.from_numpy(plausible)] = page["photo"][~torch.from_numpy(plausible)]   # as no views
            flags = photo_flags(photos)                                   # which queries are photos, as the page says
        for track in ("photo", "photo-both") if variant != "cut views" else ("photo-both",):
            for shot in (1, 5):
                if variant == "cut views":
                    accuracies = episode_accuracies(page["photo"], track_sampler(data, track, shot, args.episodes),
                                                    mean, support_views=extra,
                                                    photo_queries=flags)
                else:
                    accuracies = track_accuracies(embed, data, track, shot, args.episodes, 0, mean, pool="val",
                                                  cache=cache, views=SUPPORT_VIEWS)
                accuracy, ci95 = mean_ci95(accuracies)
                rows.append({"model": args.model, "checkpoint": named(args.checkpoint) if args.checkpoint else "shipped",
                             "segmenter": named(args.segmenter), "preprocessing": variant, "split": "val",
                             **({"blend_weight": args.blend_weight} if variant == "blend" else {}),
                             "track": track, "n_shot": shot, "episodes": args.episodes, "accuracy": accuracy,
                             "ci95": ci95})
                print(f"{variant:>9} {track:>10} {shot}-shot: {100 * accuracy:.2f} +- {100 * ci95:.2f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
