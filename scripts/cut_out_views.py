"""Photo-ready prototypes for photo supports too? On the photo track the page averages each sprite support with
4 photo-like renderings of it (training backgrounds), which lifts photo queries by 2-3 points; a photo support has
no alpha to render with. Here the shipped segmenter cuts the sprite out of each photo (`segment.sprite_masks`,
where its mask is `plausible`; elsewhere the photo stays), and the cut-out is used as the page uses a sprite:
rendered 4 times with the training backgrounds (`tracks.support_views`), or alone, or both. Val species, val
backgrounds, the photo-both track (supports and queries photos), 600 episodes, the page's classifier otherwise.

    python scripts/cut_out_views.py [--json docs/results/cut-out-views.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pokedemo.bench import track_images  # noqa: E402
from pokedemo.checkpoint import base_mean, load_checkpoint  # noqa: E402
from pokedemo.config import CHECKPOINT_DIR  # noqa: E402
from pokedemo.data.dataset import SpriteDataset, split_species  # noqa: E402
from pokedemo.fewshot import episode_accuracies, mean_ci95  # noqa: E402
from pokedemo.models import embed_array  # noqa: E402
from pokedemo.segment import cut_outs, load_segmenter  # noqa: E402
from pokedemo.tracks import photo_flags, render_pictures, support_views, track_sampler  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=600)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = track_images(SpriteDataset.load().subset(split_species()["val"]))
    photos = render_pictures(data.images, data.alpha, "val", 0)     # as the val tracks render them
    flags = photo_flags(photos)
    images, alpha, cut = cut_outs(photos, load_segmenter())   # elsewhere the photo, alpha 0
    view_pictures, was_cut = support_views(images, alpha), torch.from_numpy(cut)
    rows = []
    for name in ("student", "teacher"):
        model, card = load_checkpoint(CHECKPOINT_DIR / f"{name}.safetensors")
        embedded = embed_array(model, photos)
        keep = lambda e: torch.where(was_cut[..., None], e, embedded)   # where nothing was cut: the photo itself
        views = keep(torch.stack([embed_array(model, v, blend_photos=False) for v in view_pictures]))
        alone = keep(embed_array(model, images, blend_photos=False))[None]
        for variant, extra in (("page (plain prototypes)", None), ("4 renderings of the cut-out", views),
                               ("the cut-out", alone), ("the cut-out and 4 renderings", torch.cat([alone, views]))):
            for n_shot in (1, 5):
                accuracies = episode_accuracies(
                    embedded, track_sampler(data, "photo-both", n_shot, args.episodes), base_mean(card),
                    query_embeddings=embedded,
                    **({} if extra is None else {"support_views": extra, "photo_queries": flags}))
                accuracy, ci95 = mean_ci95(accuracies)
                rows.append({"model": name, "variant": variant, "track": "photo-both", "n_shot": n_shot,
                             "accuracy": accuracy, "ci95": ci95, "episodes": args.episodes})
                print(f"{name:8s} {variant:30s} {n_shot}-shot {100 * accuracy:6.2f} +- {100 * ci95:.2f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"command": "python scripts/cut_out_views.py " + " ".join(sys.argv[1:]),
                                         "cut_share": float(cut.mean()), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
