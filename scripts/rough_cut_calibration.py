"""How rough `segment.rough_cut_outs` makes a mask: the IoU of its roughened masks with the renderer's true ones,
on 512 base-species sprites rendered over the **train** backgrounds (what training sees; no val or test
picture is used), to set beside the shipped mask head's val IoU (its card's `val_iou`).

    python scripts/rough_cut_calibration.py [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pokedemo import segment  # noqa: E402
from pokedemo.checkpoint import read_card  # noqa: E402
from pokedemo.render import make_backgrounds  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=512)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    (images, alpha), _ = segment.sprite_splits()                      # base species (train), val species
    pick = np.random.default_rng(0).choice(len(images), args.count, replace=False)
    pictures, masks = segment.rendered_batch(images[pick], alpha[pick], make_backgrounds("train", 256, 80, 0),
                                             torch.Generator().manual_seed(0))
    _, cut, rough = segment.rough_cut_outs(pictures, masks, torch.Generator().manual_seed(1))
    overlap = segment.iou(rough, masks)
    row = {"pictures": args.count, "iou_mean": round(float(overlap.mean()), 4),
           **{f"iou_q{q}": round(float(overlap.quantile(q / 100)), 4) for q in (10, 50, 90)},
           "cut_share": round(float(cut.float().mean()), 4),
           "shipped_head_val_iou": read_card(segment.SEGMENTER).get("val_iou")}
    print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps(row, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
