"""Cut the sprite out of a photo: a small segmenter, trained on the renderer's own masks, and the photo blend
that a card may switch on with it (docs/photo-gap.md; the shipped student's card does not: it gained too little).

Both models are at 97-99% on sprites over white and lose most on cluttered real-photo backgrounds. With
the renderer's true mask, whitening the background of the val photo tracks' pictures raises the
student's photo accuracy by 3 to 10 points (`scripts/cut_out_check.py`, its `oracle` rows). This module
learns that mask: a U-Net of depthwise-separable convolutions (Ronneberger et al. 2015; Howard et al.
2017) that reads a 64 px photo-like picture and says, per pixel, whether it is the sprite. Its
training pictures are base species rendered with the **train** backgrounds; model selection reads the
val species on the **val** backgrounds; the test backgrounds and the novel species are never read.
The U-Nets trained (docs/results/segmenter/: val IoU 0.7375, 0.785 and 0.814 with 5,997, 17,913 and 55,305
numbers) find the sprite too roughly to replace the photo: cut-outs alone cost both models 4 to 17 points on the
val photo tracks. Added to the photo's own embedding (`PhotoBlend`, weight 0.3, a card option) the widest one's
cut-out gains the student 0.6 points on the val mean of all tracks, but the student and it would hold 149,225
numbers, over the student's 100,000. `MaskHead` reads the shipped student's own maps instead and saves only
itself: on the student shipped from fcc6188 to 5bae886 a 6,001-number head (val IoU 0.783) gained 0.33, over the
0.3 a change needs (`python -m pokedemo.bench photo-blend`; the 5,997-number U-Net gained 0.08), and that card
named it. The student shipped since has maps at two resolutions; the head on them (`checkpoints/segmenter.safetensors`,
4,465 numbers, val IoU 0.7715) gains it 0.28, under the 0.3, so no card names it: it is kept for the tools.

    python -m pokedemo.segment train [--epochs N] [--resume] [--out runs/NAME.safetensors]
    python -m pokedemo.segment train --backbone checkpoints/student.safetensors [--head WIDTH FINE] [--levels ...]

`cut_out` is what a preprocessing with it does to a photo: the sprite over white, cropped to as a
sprite is, where the mask is a plausible sprite's.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm import tqdm

from .checkpoint import read_card, save_checkpoint
from .images import is_photo, to_model_rgba
from .models import Student, _normalise, _separable, count_parameters, to_tensor
from .render import gaussian_blur, make_backgrounds, render

SEGMENTER = Path(__file__).resolve().parent.parent / "checkpoints" / "segmenter.safetensors"   # a MaskHead (docs/photo-gap.md)
AREA = (0.05, 0.9)     # a plausible sprite covers this share of the picture (the renderer: about 0.1 to 0.7)


class Segmenter(nn.Module):
    """(N, 3, S, S) in [0, 1] -> (N, 1, S, S) logits that a pixel is the sprite; S a multiple of 8."""

    def __init__(self, widths: tuple[int, ...] = (16, 24, 32, 48)):
        super().__init__()
        w0, w1, w2, w3 = widths
        self.stem = nn.Sequential(nn.Conv2d(3, w0, 3, 1, 1, bias=False), nn.BatchNorm2d(w0), nn.ReLU(inplace=True))
        self.down = nn.ModuleList([_separable(w0, w1, 2), _separable(w1, w2, 2), _separable(w2, w3, 2)])
        self.middle = nn.Sequential(_separable(w3, w3, 1), _separable(w3, w3, 1))
        self.up = nn.ModuleList([_separable(w3 + w2, w2, 1), _separable(w2 + w1, w1, 1), _separable(w1 + w0, w0, 1)])
        self.head = nn.Conv2d(w0, 1, 1)
        self.widths = list(widths)

    def forward(self, images: Tensor) -> Tensor:
        skips = [self.stem((images - 0.5) / 0.25)]
        for block in self.down:
            skips.append(block(skips[-1]))
        x = self.middle(skips.pop())
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], 1))
        return self.head(x)


class MaskHead(nn.Module):
    """A segmenter that reads the maps of a frozen student (the shipped one): (N, 3, S, S) in [0, 1] -> (N, 1, S, S)
    logits. The student was trained on photo-like pictures, so its maps already tell a sprite from a background;
    the head adds only a 1x1 projection of the last map at some of its resolutions (`levels`, 0 the finest, all of
    them unless told: a feature pyramid, Lin et al. 2017), summed at the finest, one separable block, and a full-resolution colour
    branch for the edges.

    Only the head is trained and saved: the student is held outside the module tree (not in `state_dict`, not
    counted, never trained), so a student with this segmenter saves its own numbers plus the head's. The card
    names the student's file and its SHA-256 (`load_segmenter` refuses another)."""

    def __init__(self, backbone: Student, width: int = 12, fine: int = 8, levels: tuple[int, ...] | None = None):
        super().__init__()
        if not isinstance(backbone, Student):
            raise ValueError(f"a mask head reads a student's maps, not a {type(backbone).__name__}'s")
        body = copy.deepcopy(backbone.body).cpu().float().requires_grad_(False).eval()
        object.__setattr__(self, "backbone", body)          # bypasses nn.Module's registration, on purpose
        with torch.no_grad():
            shapes, x = [], torch.zeros(1, 3, 64, 64)
            for layer in body:
                x = layer(x)
                shapes.append(x.shape[1:3])                  # (channels, side)
        last = [k for k in range(len(body)) if k == len(body) - 1 or shapes[k + 1][1] != shapes[k][1]]
        levels = tuple(range(len(last))) if levels is None else levels          # None: every resolution
        if not levels or len(set(levels)) != len(levels) or not all(0 <= level < len(last) for level in levels):
            raise ValueError(f"levels are distinct resolutions of the student's maps, 0 (the finest) to "
                             f"{len(last) - 1}: got {list(levels)}")
        levels = tuple(sorted(levels))
        self.taps = [last[level] for level in levels]           # levels: 0 the finest resolution, 1 the next, ...
        self.lateral = nn.ModuleList(nn.Conv2d(shapes[k][0], width, 1, bias=False) for k in self.taps)
        self.norm = nn.BatchNorm2d(width)
        self.mix = _separable(width, width, 1)
        self.colour = nn.Sequential(nn.Conv2d(3, fine, 3, 1, 1, bias=False), nn.BatchNorm2d(fine), nn.ReLU(inplace=True))
        self.fine = _separable(width + fine, fine, 1)
        self.head = nn.Conv2d(fine, 1, 1)
        self.arguments = {"width": width, "fine": fine, "levels": list(levels)}

    def forward(self, images: Tensor) -> Tensor:
        x, maps = _normalise(images), []
        with torch.no_grad():
            for k, layer in enumerate(self.backbone.to(images.device, self.head.weight.dtype)):   # follows .to()
                x = layer(x)
                if k in self.taps:
                    maps.append(x)
                if k == self.taps[-1]:            # the layers past the last map read are not run
                    break
        side = maps[0].shape[-2:]
        summed = sum(F.interpolate(project(m), size=side, mode="bilinear", align_corners=False)
                     for project, m in zip(self.lateral, maps))
        coarse = F.interpolate(self.mix(F.relu(self.norm(summed))), size=images.shape[-2:], mode="bilinear",
                               align_corners=False)
        return self.head(self.fine(torch.cat([coarse, self.colour(_normalise(images))], 1)))


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def placed(card: dict, folder: Path) -> dict:
    """A mask head's card as saved in `folder`: its backbone named relative to that folder (`load_segmenter`
    looks for it there); a U-Net's card as it is."""
    if not card.get("backbone"):
        return {key: value for key, value in card.items() if key != "backbone"}
    file = os.path.relpath(Path(card["backbone"]["file"]).resolve(), Path(folder).resolve())
    return {**card, "backbone": {**card["backbone"], "file": file}}


def mask_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Binary cross-entropy on the soft mask plus a soft Dice term (the sprite is often the smaller part)."""
    probability = logits.sigmoid()
    overlap = (probability * target).sum((1, 2, 3))
    dice = 1 - (2 * overlap + 1) / (probability.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1)
    return F.binary_cross_entropy_with_logits(logits, target) + dice.mean()


def iou(probability: Tensor, target: Tensor) -> Tensor:
    """(N,) intersection over union of the masks at 0.5."""
    a, b = probability > 0.5, target > 0.5
    union = (a | b).sum((1, 2, 3)).float()
    return torch.where(union > 0, (a & b).sum((1, 2, 3)).float() / union.clamp(min=1), 1.0)   # both empty: alike


def rendered_batch(images: np.ndarray, alpha: np.ndarray, backgrounds: Tensor, generator: torch.Generator):
    """Photo-like pictures of uint8 sprites and where each sprite lies in them: (B, 3, S, S), (B, 1, S, S)."""
    masks = torch.from_numpy(np.ascontiguousarray(alpha)).float()[:, None] / 255
    return render(to_tensor(images), masks, backgrounds, generator, with_mask=True)


def validation_set(images: np.ndarray, alpha: np.ndarray, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Val sprites rendered once with the **val** backgrounds (fixed seed; the val photo tracks' bank and draws):
    what model selection reads."""
    from .tracks import BANK_SIDE, BANK_SIZE

    bank = make_backgrounds("val", BANK_SIZE, max(BANK_SIDE, images.shape[1]), seed)
    generator = torch.Generator().manual_seed(seed)
    pictures, masks = zip(*[rendered_batch(images[k:k + 256], alpha[k:k + 256], bank, generator)
                            for k in range(0, len(images), 256)])
    return torch.cat(pictures), torch.cat(masks)


def sprite_splits() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(images, alpha) of the base species (training) and of the val species (model selection)."""
    from .data.dataset import SpriteDataset, split_species

    everything, splits = SpriteDataset.load(), split_species()
    base, val = everything.subset(splits["base"]), everything.subset(splits["val"])
    return (base.images, base.alpha), (val.images, val.alpha)


@torch.inference_mode()
def probabilities(model: Segmenter, pictures: Tensor, batch: int = 256) -> Tensor:
    """(N, 3, S, S) in [0, 1] -> (N, 1, S, S): the chance that each pixel is the sprite, in batches."""
    model.eval()
    return torch.cat([model(pictures[k:k + batch]).sigmoid() for k in range(0, len(pictures), batch)])


def evaluate(model: Segmenter, pictures: Tensor, masks: Tensor) -> dict:
    probability = probabilities(model, pictures)
    return {"val_iou": round(float(iou(probability, masks).mean()), 4),
            "val_abs_error": round(float((probability - masks).abs().mean()), 4)}


def train(args: argparse.Namespace, splits=None) -> Path:
    """Train on base species rendered with the train backgrounds (a new bank each epoch), keep the epoch
    with the best val IoU; every epoch's state is saved, `--resume` goes on from it. splits: (base, val)
    as `sprite_splits` gives them (its default)."""
    from .train import _restore, _state_tensors

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    (base_images, base_alpha), val = sprite_splits() if splits is None else splits
    val_pictures, val_masks = validation_set(*val)
    out = Path(args.out)
    if args.backbone:
        from .checkpoint import load_checkpoint

        backbone_card = {"file": str(Path(args.backbone).resolve()), "sha256": file_digest(args.backbone)}
        model = MaskHead(load_checkpoint(args.backbone, extras=False)[0], *args.head,
                         tuple(args.levels) if args.levels else None)
        kind = {"architecture": "mask-head", "arguments": model.arguments, "backbone": backbone_card}
    else:
        model = Segmenter(tuple(args.widths))
        kind = {"architecture": "segmenter", "arguments": {"widths": list(args.widths)}}
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    no_heads = nn.Module()   # the run state's layout is train.py's (model, heads, optimiser); this has no heads
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state_file, history_file = run_dir / "last.safetensors", run_dir / "state.json"
    arguments = {key: getattr(args, key) for key in ("epochs", "batch_size", "lr", "bank", "seed")}
    arguments |= ({"head": args.head, "levels": kind["arguments"]["levels"], "backbone": kind["backbone"]["sha256"]}
                  if args.backbone
                  else {"widths": args.widths})
    history = {"epoch": 0, "best": -1.0, "seconds": 0.0, "log": [], "arguments": arguments}
    if args.resume and state_file.exists():
        history = json.loads(history_file.read_text())
        if history.get("arguments") != arguments:   # the schedule and the draws depend on every one of them
            raise SystemExit(f"--resume goes on with the run's own arguments {history.get('arguments')}, "
                             f"not {arguments}; use another --run-dir for another run")
        _restore(load_file(str(state_file)), model, no_heads, optimiser)
        print(f"resumed the segmenter after epoch {history['epoch']}")
    steps = max(1, len(base_images) // args.batch_size)
    card = {**kind, "input_size": 64,
            "training": arguments, "parameters": count_parameters(model),
            "command": "python -m pokedemo.segment " + " ".join(args.argv),
            "data": "base species, train backgrounds (dead leaves and scikit-image's photographs too); the epoch "
                    "chosen by IoU on the val species with the val backgrounds (seed 0: the val photo tracks' "
                    "pictures)"}
    for epoch in range(history["epoch"], args.epochs):
        started = time.perf_counter()
        model.train()
        generator = torch.Generator().manual_seed(args.seed * 1000 + epoch)
        bank = make_backgrounds("train", args.bank, 80, seed=args.seed * 1000 + epoch, leaves=True, extra_photos=True)
        order = torch.randperm(len(base_images), generator=generator).numpy()
        losses = []
        for step in tqdm(range(steps), desc=f"segmenter epoch {epoch + 1}/{args.epochs}", leave=False):
            progress = (epoch * steps + step) / (args.epochs * steps)      # warm up 5%, then a cosine to 0
            for group in optimiser.param_groups:
                group["lr"] = args.lr * min(progress / 0.05, 0.5 * (1 + np.cos(np.pi * progress)))
            pick = np.sort(order[step * args.batch_size:(step + 1) * args.batch_size])
            pictures, masks = rendered_batch(base_images[pick], base_alpha[pick], bank, generator)
            loss = mask_loss(model(pictures), masks)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        scores = evaluate(model, val_pictures, val_masks)
        history["seconds"] += time.perf_counter() - started
        history["log"].append({"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 4), **scores,
                               "seconds": round(history["seconds"], 1)})
        print(json.dumps(history["log"][-1]), flush=True)
        if scores["val_iou"] > history["best"]:
            history["best"] = scores["val_iou"]
            save_checkpoint(model, run_dir / "best.safetensors", placed({**card, **scores, "epoch": epoch + 1}, run_dir))
        history["epoch"] = epoch + 1
        save_file(_state_tensors(model, no_heads, optimiser), str(state_file))
        history_file.write_text(json.dumps(history))
    best = run_dir / "best.safetensors"
    model.load_state_dict(load_file(str(best)))
    best_card = read_card(best)
    save_checkpoint(model, out, placed({**best_card, "training_seconds": round(history["seconds"], 1),
                                        "log": history["log"], "backbone": kind.get("backbone")}, out.parent))
    print(f"wrote {out}: epoch {best_card['epoch']}, val IoU {best_card['val_iou']}, "
          f"{best_card['parameters']} numbers, {history['seconds']:.0f} s")
    return out


def load_segmenter(path: Path | str = SEGMENTER) -> Segmenter | MaskHead:
    """The segmenter its card describes, in eval mode (safetensors only, strict). A `MaskHead` reads the student
    its card names (a file relative to the card's folder), which must be the very file it was trained on."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"refusing to load {path.name}: only .safetensors checkpoints are loaded")
    card = read_card(path)
    if card.get("architecture") not in ("segmenter", "mask-head"):
        raise ValueError(f"{path.name} is not a segmenter (its card says '{card.get('architecture')}')")
    if card["architecture"] == "segmenter":
        model = Segmenter(tuple(card["arguments"]["widths"]))
    else:
        from .checkpoint import load_checkpoint

        backbone = path.parent / card["backbone"]["file"]
        if not backbone.exists():
            raise FileNotFoundError(f"{backbone} is missing: {path.name} reads that student's maps (restore it with git)")
        if file_digest(backbone) != card["backbone"]["sha256"]:
            raise ValueError(f"{path.name} was trained on the maps of another {backbone.name} (SHA-256 "
                             f"{card['backbone']['sha256'][:12]}...): retrain it on this one, "
                             f"python -m pokedemo.segment train --backbone {backbone}")
        model = MaskHead(load_checkpoint(backbone, extras=False)[0], **card["arguments"])
    model.load_state_dict(load_file(str(path)), strict=True)
    return model.requires_grad_(False).eval()


def sprite_masks(pictures: np.ndarray, model: Segmenter) -> np.ndarray:
    """(N, S, S, 3) uint8 photo-like pictures -> (N, S, S) uint8 masks (255 = sprite)."""
    probability = probabilities(model, to_tensor(pictures))
    probability = torch.where(probability < 0.1, 0.0, probability)       # no faint tint of the background
    return probability[:, 0].mul(255).round().to(torch.uint8).numpy()


def plausible(mask: np.ndarray) -> bool:
    """A mask that looks like one sprite's: covering `AREA` of the picture."""
    share = float((mask > 127).mean())
    return AREA[0] <= share <= AREA[1]


def rough_cut_outs(pictures: Tensor, masks: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """What `cut_out` makes of photo-like pictures when the segmenter errs, for training a model on cut-outs
    (`train.TrainConfig.cut_p`): each true mask (`render(..., with_mask=True)`) is roughened as a segmenter's
    would be (blurred, moved by a smooth random field, grown or shrunk, then made soft again), so that parts of
    the sprite go missing and patches of background stay (IoU with the true mask 0.77 on average on base species
    over the train backgrounds, 0.47 to 0.95 from the 10th to the 90th centile; the shipped head: 0.78 on val).
    Where it is `plausible`, the picture is whitened outside it and cropped to its content, padded to a white
    square and resized, as `images.to_model_rgba` does (here in torch: bilinear with antialiasing rather than
    Lanczos, no rounding to uint8, the content found on the whitened picture). Calibration:
    `python scripts/rough_cut_calibration.py`.

    pictures: (B, 3, S, S) in [0, 1] and masks: (B, 1, S, S) in [0, 1], on the CPU (as training views are made).
    returns: the pictures (the implausible ones as they were), (B,) bool: which were cut, and (B, 1, S, S) the
    roughened masks (before the crop)."""
    batch, _, size, _ = pictures.shape
    rand = lambda *shape: torch.rand(*shape, generator=generator)
    soft = gaussian_blur(masks, 0.5 + 1.5 * rand(batch))
    cells = 3 + int(rand(1) * 6)                                          # the field's scale, per batch
    field = F.interpolate(torch.randn(batch, 1, cells, cells, generator=generator), size=(size, size),
                          mode="bicubic", align_corners=False)
    level = soft - 0.5 + 0.5 * rand(batch, 1, 1, 1) * field + (rand(batch, 1, 1, 1) * 2 - 1) * 0.15
    rough = (level * (4 + 8 * rand(batch, 1, 1, 1)) + 0.5).clamp(0, 1)
    rough = torch.where(rough < 0.1, 0.0, rough)                          # as `sprite_masks`
    flat = pictures * rough + (1 - rough)
    out, cut = pictures.clone(), torch.zeros(batch, dtype=torch.bool)
    for k in range(batch):
        share = float((rough[k] > 0.5).float().mean())
        content = (rough[k, 0] > 8 / 255) & ((1 - flat[k]).amax(0) > 24 / 255)   # `images.content_box`
        if not (AREA[0] <= share <= AREA[1]) or not content.any():
            continue
        rows, cols = content.any(1).nonzero()[:, 0], content.any(0).nonzero()[:, 0]
        crop = flat[k, :, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        side = max(crop.shape[1:])
        square = torch.ones(3, side, side, dtype=pictures.dtype)
        top, left = (side - crop.shape[1]) // 2, (side - crop.shape[2]) // 2
        square[:, top:top + crop.shape[1], left:left + crop.shape[2]] = crop
        out[k] = F.interpolate(square[None], size=(size, size), mode="bilinear", antialias=True,
                               align_corners=False)[0].clamp(0, 1)
        cut[k] = True
    return out, cut, rough


def _cut(pictures: np.ndarray, model: Segmenter) -> tuple[np.ndarray, np.ndarray]:
    """`cut_out`, and (N,) bool: which pictures were cut (their mask `plausible`)."""
    out, cut = pictures.copy(), np.zeros(len(pictures), dtype=bool)
    for k, mask in enumerate(sprite_masks(pictures, model)):
        if plausible(mask):
            rgba = Image.fromarray(np.dstack([pictures[k], mask]), "RGBA")
            out[k], cut[k] = to_model_rgba(rgba, pictures.shape[1])[0], True
    return out, cut


def cut_out(pictures: np.ndarray, model: Segmenter) -> np.ndarray:
    """(N, S, S, 3) uint8 photos, preprocessed as the page preprocesses one (`images.to_model_image`) ->
    the same with each sprite over white and cropped to as a sprite is (`images.to_model_rgba`), where
    the segmenter's mask is `plausible`; the others as they were."""
    return _cut(pictures, model)[0]


class PhotoBlend:
    """A test-time extra of a model's `embed` (`models.Embedder`), set from its card's `photo_blend`
    ({"segmenter": file beside the checkpoint, "weight": w}) by `checkpoint.load_checkpoint`: a picture the
    page takes for a photo (`images.is_photo`) is embedded as the normalised sum of its own embedding and w
    times its cut-out's (`cut_out`); where the mask is not a plausible sprite's, as it was. Sprites and
    pictures on white are untouched. Chosen on the val species (`python -m pokedemo.bench photo-blend`).

    Not a submodule: fine-tuned copies share it (`copy.deepcopy` returns it), it is neither trained nor saved."""

    def __init__(self, segmenter: Segmenter, weight: float, path: Path | None = None):
        if not 0 < weight:
            raise ValueError(f"the cut-out's weight must be above 0, got {weight}")
        self.segmenter, self.weight, self.path = segmenter.eval(), float(weight), path

    @classmethod
    def from_card(cls, entry: dict, folder: Path) -> PhotoBlend:
        """From a card's `photo_blend` entry; the segmenter's file is named relative to the card's folder."""
        path = Path(folder) / entry["segmenter"]
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: the card's photo_blend needs this segmenter beside the "
                                    "checkpoint (restore it with git)")
        return cls(load_segmenter(path), entry["weight"], path)

    def __deepcopy__(self, memo) -> PhotoBlend:
        return self

    def __call__(self, embed, pictures: Tensor, embeddings: Tensor) -> Tensor:
        """pictures (N, 3, S, S) in [0, 1] (uint8 pictures / 255, as the models take them); embeddings (N, D)
        their own, by `embed` (pictures -> embeddings, the model's test-time pass). Returns the blended (N, D)."""
        images = pictures.detach().float().mul(255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        photos = np.flatnonzero([is_photo(Image.fromarray(image)) for image in images])
        if not len(photos):
            return embeddings
        cut_images, cut = _cut(images[photos], self.segmenter)
        if not cut.any():
            return embeddings
        rows = torch.from_numpy(photos[cut]).to(embeddings.device)
        extra = embed(to_tensor(cut_images[cut]).to(device=pictures.device, dtype=pictures.dtype))
        embeddings = embeddings.clone()
        embeddings[rows] = F.normalize(embeddings[rows] + self.weight * extra.to(embeddings.dtype), dim=-1)
        return embeddings


def main(argv: list[str] | None = None, splits=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pokedemo.segment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("train", help="train the segmenter on the base species")
    command.add_argument("--epochs", type=int, default=20)
    command.add_argument("--batch-size", type=int, default=128)
    command.add_argument("--lr", type=float, default=3e-3)
    command.add_argument("--widths", type=int, nargs=4, default=[16, 24, 32, 48], help="the U-Net's (`Segmenter`)")
    command.add_argument("--backbone", type=Path, help="a student checkpoint: train a `MaskHead` on its frozen maps "
                                                       "instead of a U-Net (only the head is saved)")
    command.add_argument("--head", type=int, nargs=2, default=[12, 8], metavar=("WIDTH", "FINE"),
                         help="with --backbone: the head's widths at the maps' side and at full resolution")
    command.add_argument("--levels", type=int, nargs="+",
                         help="with --backbone: the resolutions of the student's maps the head reads (0 the finest; "
                              "default: all of them)")
    command.add_argument("--bank", type=int, default=1024, help="training backgrounds made for each epoch")
    command.add_argument("--seed", type=int, default=0)
    command.add_argument("--threads", type=int, default=2)
    command.add_argument("--run-dir", default="runs/segmenter")
    command.add_argument("--out", default="runs/segmenter.safetensors")
    command.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.safetensors")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    if min(args.epochs, args.batch_size, args.bank, *args.head) < 1:
        parser.error("--epochs, --batch-size, --bank and --head must be at least 1")
    train(args, splits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
