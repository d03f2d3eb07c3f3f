"""Would photos be better centred on a mean of their own? The page centres every embedding on the mean of the
base species' sprites (`card["base_mean"]`, SimpleShot). Here a picture the page takes for a photo
(`images.is_photo`), and the supports' photo-like views, are centred instead on the mean embedding of base-species
sprites rendered like photos with the *training* backgrounds (of 3,000 rendered, those the page takes for photos;
no val or test picture goes into it):
a shift of the photos' embeddings, learnt without the episode's pictures. Val species, val backgrounds, the page's
classifier otherwise (photo-ready prototypes, the cards' extras), 600 episodes of the photo tracks.

    python scripts/photo_centre.py [--json docs/results/photo-centre.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pokedemo.bench import track_images  # noqa: E402
from pokedemo.checkpoint import base_mean, load_checkpoint  # noqa: E402
from pokedemo.config import CHECKPOINT_DIR  # noqa: E402
from pokedemo.data.dataset import SpriteDataset, split_species  # noqa: E402
from pokedemo.fewshot import centre, episode_accuracies, mean_ci95  # noqa: E402
from pokedemo.models import embed_array  # noqa: E402
from pokedemo.tracks import photo_flags, render_pictures, support_views, track_sampler, track_views  # noqa: E402

BASE_PICTURES = 3000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=600)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    everything, splits = SpriteDataset.load(), split_species()
    val, base = everything.subset(splits["val"]), everything.subset(splits["base"])
    data = track_images(val)
    pick = np.random.default_rng(0).choice(len(base.images), min(BASE_PICTURES, len(base.images)), replace=False)
    base_photos = render_pictures(base.images[pick], base.alpha[pick], "train", 77)
    photos = render_pictures(data.images, data.alpha, "val", 0)     # as the val tracks render them
    flags, view_pictures = photo_flags(photos), support_views(data.images, data.alpha)
    rows = []
    for name in ("student", "teacher"):
        model, card = load_checkpoint(CHECKPOINT_DIR / f"{name}.safetensors")
        mean = base_mean(card)
        photo_mean = embed_array(model, base_photos)[photo_flags(base_photos)].mean(dim=0)
        clean, rendered = embed_array(model, data.images), embed_array(model, photos)
        views = torch.stack([embed_array(model, v, blend_photos=False) for v in view_pictures])
        for variant, shifted in (("page", mean), ("photo mean", photo_mean)):
            tables = {"clean": centre(clean, mean),
                      "photo": torch.where(flags[:, None], centre(rendered, shifted), centre(rendered, mean))}
            for track in ("photo", "photo-both"):
                supports, queries = track_views(track)
                extra = {"support_views": centre(views, shifted), "photo_queries": flags} if supports == "clean" else {}
                for n_shot in (1, 5):
                    accuracies = episode_accuracies(tables[supports], track_sampler(data, track, n_shot, args.episodes),
                                                    None, query_embeddings=tables[queries], **extra)
                    accuracy, ci95 = mean_ci95(accuracies)
                    rows.append({"model": name, "variant": variant, "track": track, "n_shot": n_shot,
                                 "accuracy": accuracy, "ci95": ci95, "episodes": args.episodes})
                    print(f"{name:8s} {variant:11s} {track:11s} {n_shot}-shot {100 * accuracy:6.2f} +- "
                          f"{100 * ci95:.2f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"command": "python scripts/photo_centre.py " + " ".join(sys.argv[1:]),
                                         "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
