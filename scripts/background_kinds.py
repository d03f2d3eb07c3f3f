"""Where the photo track goes wrong, on the val species only: 5-way 5-shot photo-track accuracy with the queries
rendered on one kind of background at a time (solid, gradient, texture, photo crop) from the **val** pool, the
page's classifier (photo-ready prototypes). A diagnostic for choosing what to train on, so it never reads the
test backgrounds or the novel species.

    python scripts/background_kinds.py --model student [--checkpoint runs/x.safetensors] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pokedemo.bench import model_embedder, track_images, view_embedder  # noqa: E402
from pokedemo.data.dataset import SpriteDataset, split_species  # noqa: E402
from pokedemo.fewshot import mean_ci95  # noqa: E402
from pokedemo.render import make_backgrounds  # noqa: E402
from pokedemo.tracks import BANK_SIDE, BANK_SIZE, SUPPORT_VIEWS, render_pictures, track_accuracies  # noqa: E402

KINDS = ("solid", "gradient", "texture", "photo")   # make_backgrounds' order: entry k is of kind k % 4


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="student", help="teacher | student | paper-student")
    parser.add_argument("--checkpoint", type=Path, help="default: the shipped checkpoint of --model")
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data = track_images(SpriteDataset.load().subset(split_species()["val"]))
    embed, mean, _ = model_embedder(args.model, args.checkpoint, True)
    bank = make_backgrounds("val", BANK_SIZE, max(BANK_SIDE, data.images.shape[1]), 0)
    cache = {"clean": embed(data.images)}
    rows = []
    for kind, name in enumerate(KINDS):
        cache["photo_images"] = render_pictures(data.images, data.alpha, "val", backgrounds=bank[kind::len(KINDS)])
        cache.pop("photo", None)            # the supports' views stay: they are the same
        cache.pop("photo_flags", None)
        accuracies = track_accuracies(embed, data, "photo", 5, args.episodes, 0, mean, pool="val", cache=cache,
                                      views=SUPPORT_VIEWS, view_embed=view_embedder(embed))
        accuracy, ci95 = mean_ci95(accuracies)
        rows.append({"model": args.model, "checkpoint": str(args.checkpoint or "shipped"), "background": name,
                     "split": "val", "track": "photo", "n_shot": 5, "episodes": args.episodes,
                     "accuracy": accuracy, "ci95": ci95})
        print(f"{name:>9}: {100 * accuracy:.2f} +- {100 * ci95:.2f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
