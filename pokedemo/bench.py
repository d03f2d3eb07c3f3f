"""Benchmark commands.

    python -m pokedemo.bench fewshot --model pixels|teacher|student|paper-student|random-student
                                     [--track clean|art|photo|photo-both] [--json PATH] [--record]
    python -m pokedemo.bench all            # the compression scoreboard -> docs/benchmarks.md + .json

Protocol: novel species (Gen I, #1-151), 5-way, 15 queries per class, 600 seeded source-disjoint
episodes, nearest prototype; mean accuracy +- 95% CI, for 1-shot and 5-shot; per robustness track
(`pokedemo.tracks`: clean, art, photo, photo-both; the photo tracks render with the `test` pool).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import INFERENCE_DTYPES, base_mean, load_checkpoint, read_card, record_card, record_scores
from .config import CHECKPOINT_DIR, EpisodeConfig
from .data.dataset import EpisodeSampler, SpriteDataset, split_species
from .fewshot import FineTuneConfig, centre, compute_prototypes, mean_ci95
from .models import build_model, embed_array, pick_device
from .segment import SEGMENTER, PhotoBlend
from .tracks import SUPPORT_VIEWS, TRACKS, TrackImages, track_accuracies

MODEL_NAMES = ("pixels", "random-student", "paper-student", "student", "teacher")
BLEND_WEIGHT = 0.3   # the cut-out's weight in `photo_blend`, from scripts/cut_out_check.py (val species)
# what a test-time extra must add to the val mean to be chosen: mirror averaging, any gain (a second pass of a
# small model); the blend, more than the noise that the robust ablations' rule allows a new student (it adds the
# segmenter, and its weight and segmenter were chosen on the same val pictures). A cheaper arithmetic
# (`inference_dtype`, bfloat16) is chosen unless it loses more than that noise.
MARGINS = {"flip_average": 0.0, "photo_blend": 0.003, "inference_dtype": 0.003}
LOW_DTYPE = "bfloat16"


def pixel_embeddings(images: np.ndarray, mean: np.ndarray | None) -> torch.Tensor:
    """Raw pixels in [0, 1], centred on the base species' mean image, L2-normalised. (N, S*S*3)"""
    flat = torch.from_numpy(images.reshape(len(images), -1)).float() / 255
    return F.normalize(flat - torch.from_numpy(mean) if mean is not None else flat, dim=-1)


def model_embedder(name: str, checkpoint: Path | None = None, centre: bool = True, device: str = "cpu",
                   flip_average: bool | None = None, photo_blend: bool | None = None,
                   blend_weight: float = BLEND_WEIGHT, inference_dtype: bool | None = None
                   ) -> tuple[Callable[[np.ndarray], torch.Tensor], torch.Tensor | None, dict]:
    """(embed: uint8 images (N, S, S, 3) -> (N, D) on the CPU, centring mean (D,) or None, card) for a model
    name; the model runs on `device`. flip_average, photo_blend: override the card's test-time extras (mirror
    averaging; photos blended with their cut-out by the shipped segmenter, `photo_blend_entry`, the cut-out weighted
    `blend_weight`); inference_dtype: test-time arithmetic in bfloat16 (True) or float32 (False) whatever the card
    and this machine say (`Embedder.inference_dtype`). embed takes
    `blend_photos` (`Embedder.embed`: False for the supports' photo-like views, as the page embeds them)."""
    if name == "pixels":
        base = SpriteDataset.load().subset(split_species()["base"])
        mean = base.images.reshape(len(base), -1).astype(np.float32).mean(axis=0) / 255
        return (lambda images, blend_photos=True: pixel_embeddings(images, mean if centre else None), None,
                {"parameters": 0})
    if name == "random-student":          # the shipped student's network, untrained (the scoreboard's speed row too)
        torch.manual_seed(0)
        shape = read_card(CHECKPOINT_DIR / "student.safetensors")["arguments"]
        model, card = build_model("student", **shape), {"parameters": None}
    else:
        model, card = load_checkpoint(checkpoint or CHECKPOINT_DIR / f"{name}.safetensors")
    model = model.to(device)
    if flip_average is not None:
        model.flip_average = flip_average
    if photo_blend is not None:   # on: the shipped segmenter and blend_weight, whatever the card names
        model.photo_blend = (PhotoBlend.from_card(photo_blend_entry(blend_weight), SEGMENTER.parent) if photo_blend
                             else None)
    if inference_dtype is not None:
        model.set_inference_dtype(INFERENCE_DTYPES[LOW_DTYPE] if inference_dtype else None)
    card = {**card, "flip_average": model.flip_average, "photo_blend": model.photo_blend is not None,
            "inference_dtype": model.inference_dtype_name}
    return (lambda images, blend_photos=True: embed_array(model, images, blend_photos=blend_photos),
            base_mean(card) if centre else None, card)


def view_embedder(embed: Callable) -> Callable[[np.ndarray], torch.Tensor]:
    """`model_embedder`'s embed as the page embeds the supports' photo-like views: without the photo blend."""
    return lambda images: embed(images, blend_photos=False)


def model_embeddings(name: str, dataset: SpriteDataset, checkpoint: Path | None = None,
                     centre: bool = True) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    """(embeddings (N, D), centring mean (D,) or None, info) of `dataset` for a model name."""
    embed, mean, card = model_embedder(name, checkpoint, centre)
    return embed(dataset.images), mean, card


def track_images(dataset: SpriteDataset) -> TrackImages:
    is_art = np.asarray([kind.startswith("art") for kind in dataset.source_kind])
    return TrackImages(dataset.images, dataset.alpha, dataset.species, dataset.source, is_art[dataset.source])


def fewshot_rows(name: str, shots=(1, 5), episodes: int = 600, seed: int = 0, checkpoint: Path | None = None,
                 centre: bool = True, dataset: SpriteDataset | None = None, tracks=("clean",),
                 rendered: dict | None = None, device: str = "cpu", views: int = SUPPORT_VIEWS,
                 pool: str = "test", flip_average: bool | None = None, photo_blend: bool | None = None,
                 blend_weight: float = BLEND_WEIGHT, inference_dtype: bool | None = None) -> list[dict]:
    """Benchmark rows of one model on each track, the model loaded and each view embedded once. rendered: a
    dict shared between calls on the same dataset, which keeps the photo-like pictures (they do not depend on
    the model) so they are rendered once. views: photo-like views per support behind the photo-ready
    prototypes (the page's method, `tracks.track_accuracies`); 0 for plain prototypes. flip_average, photo_blend:
    override the card's test-time extras (None: as the card says, as the page does); blend_weight: the cut-out's
    weight where photo_blend is on; inference_dtype: as `model_embedder`'s."""
    dataset = dataset or SpriteDataset.load().subset(split_species()["novel"])
    started = time.perf_counter()
    embed, mean, card = model_embedder(name, checkpoint, centre, device, flip_average, photo_blend, blend_weight,
                                       inference_dtype)
    rendered = {} if rendered is None else rendered
    cache: dict = dict(rendered)
    rows = []
    for track in tracks:
        for n_shot in shots:
            accuracies = track_accuracies(embed, track_images(dataset), track, n_shot, episodes, seed, mean,
                                          pool=pool, cache=cache, views=views, view_embed=view_embedder(embed))
            accuracy, ci95 = mean_ci95(accuracies)
            rendered.update({k: v for k, v in cache.items() if k in ("photo_images", "view_images")})
            rows.append({"model": name, "track": track, "split": "val" if pool == "val" else "novel",
                         "n_way": 5, "n_shot": n_shot, "support_views": views,
                         "flip_average": bool(card.get("flip_average", False)),
                         "photo_blend": bool(card.get("photo_blend", False)),
                         "inference_dtype": card.get("inference_dtype", "float32"),
                         "n_query": 1 if track == "art" else 15, "episodes": episodes, "seed": seed,
                         "accuracy": accuracy, "ci95": ci95, "seconds": round(time.perf_counter() - started, 2)})
            started = time.perf_counter()
    return rows


def none_threshold(name: str, keep: float = 0.95, episodes: int = 300, seed: int = 0, split: str = "val",
                   n_shot: int = 5, threshold: float | None = None) -> dict:
    """The "none of these" threshold of a model, chosen on the val species: in 5-way episodes, the cosine
    similarity of each query to its nearest prototype, for queries of the episode's classes (known) and of
    other species (unknown); the threshold keeps `keep` of the known queries. Returns the threshold with
    the share of unknown queries it turns away (on `split`). threshold: measure this one instead of choosing."""
    dataset = SpriteDataset.load().subset(split_species()[split])
    embed, mean, _ = model_embedder(name)
    embeddings = centre(embed(dataset.images), mean)
    sampler = EpisodeSampler(dataset.species, dataset.source, EpisodeConfig(5, n_shot, 15, episodes, seed))
    rng = np.random.default_rng(seed)
    labels = torch.arange(5).repeat_interleave(n_shot)
    known, unknown = [], []
    for support, query, _ in sampler:
        prototypes = compute_prototypes(embeddings[support], labels)
        inside = np.isin(dataset.species, dataset.species[support])
        others = rng.choice(np.flatnonzero(~inside), len(query), replace=False)
        known.append((embeddings[query] @ prototypes.T).max(dim=1).values)
        unknown.append((embeddings[others] @ prototypes.T).max(dim=1).values)
    known, unknown = torch.cat(known).numpy(), torch.cat(unknown).numpy()
    threshold = float(np.quantile(known, 1 - keep)) if threshold is None else threshold
    return {"model": name, "split": split, "episodes": episodes, "n_shot": n_shot, "keep": keep,
            "threshold": round(threshold, 4), "known_kept": float((known >= threshold).mean()),
            "unknown_turned_away": float((unknown < threshold).mean())}


def photo_blend_entry(weight: float = BLEND_WEIGHT) -> dict:
    """A card's `photo_blend`: the shipped segmenter (a file beside the checkpoints) and the cut-out's weight."""
    return {"segmenter": SEGMENTER.name, "weight": weight}


def val_choice(name: str, option: str, episodes: int = 600, seed: int = 0, blend_weight: float = BLEND_WEIGHT) -> dict:
    """A test-time option of `Embedder.embed` ("flip_average", "photo_blend" or "inference_dtype": bfloat16
    arithmetic), measured on the **val** species (val backgrounds) without and with it, every track, 1- and
    5-shot, the page's photo-ready prototypes, the other options as the card says; an extra is `chosen` when it
    raises the mean of those accuracies by more than its `MARGINS`, the cheaper arithmetic unless it lowers it by
    more. The novel species play no part. blend_weight: the cut-out's weight (photo_blend)."""
    val, rendered = SpriteDataset.load().subset(split_species()["val"]), {}
    accuracies = {}
    for on in (False, True):
        rows = fewshot_rows(name, (1, 5), episodes, seed, dataset=val, tracks=TRACKS, rendered=rendered,
                            pool="val", blend_weight=blend_weight, **{option: on})
        accuracies["on" if on else "off"] = {f"{r['track']} {r['n_shot']}-shot": round(r["accuracy"], 4)
                                             for r in rows}
    means = {key: float(np.mean(list(values.values()))) for key, values in accuracies.items()}
    entry = {"entry": photo_blend_entry(blend_weight)} if option == "photo_blend" else {}   # what "on" measured
    return {"model": name, "option": option, **entry, "split": "val", "episodes": episodes, "seed": seed, **accuracies,
            "mean_off": round(means["off"], 4), "mean_on": round(means["on"], 4), "margin": MARGINS[option],
            "chosen": bool(means["on"] >= means["off"] - MARGINS[option] if option == "inference_dtype"
                           else means["on"] > means["off"] + MARGINS[option])}


def val_map(out: Path, per_species: int = 8, seed: int = 0) -> Path:
    """t-SNE maps of the val species (never trained on) for teacher and student, saved for the app."""
    from .data.dataset import species_table
    from .projection import project

    val = SpriteDataset.load().subset(split_species()["val"])
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.choice(np.flatnonzero(val.species == s), min(per_species, int((val.species == s).sum())),
                                      replace=False) for s in np.unique(val.species)])
    names = species_table()
    report = {"command": "python -m pokedemo.bench valmap", "species": [names[int(s)]["name"] for s in val.species[keep]],
              "source": [val.source_kind[int(s)] for s in val.source[keep]]}
    for name in ("teacher", "student"):
        model, _ = load_checkpoint(CHECKPOINT_DIR / f"{name}.safetensors")
        report[name] = project(embed_array(model, val.images[keep]).numpy(), "t-SNE", 30, seed).round(3).tolist()
    out.write_text(json.dumps(report))
    print(f"wrote {out} ({len(keep)} images of {len(np.unique(val.species))} val species)")
    return out


def render_grid(out: Path, columns: int = 10, seed: int = 0) -> Path:
    """A picture of what the renderer does: novel sprites (top row), as the photo tracks see them (`test`
    pool, 2 rows, as the benchmark renders them) and as training sees base sprites (`train` pool, 2 rows)."""
    from PIL import Image

    from .tracks import render_pictures

    everything, splits = SpriteDataset.load(), split_species()
    rows = []
    for split, pool in (("novel", "test"), ("base", "train")):
        data = everything.subset(splits[split])
        pick = np.random.default_rng(seed).choice(len(data), columns, replace=False)
        if split == "novel":
            rows.append(data.images[pick])
        rows += [render_pictures(data.images[pick], data.alpha[pick], pool, seed + k) for k in range(2)]
    grid = np.concatenate([np.concatenate(list(row), axis=1) for row in rows], axis=0)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.Resampling.NEAREST).save(out)
    print(f"wrote {out}: {len(rows)} rows x {columns}")
    return out


def card_scores(rows: list[dict]) -> dict:
    """Benchmark rows as a card's `scores`: {"novel_5way_5shot": {...}, "novel_photo_5way_5shot": {...}, ...}
    (the clean track keeps its old key)."""
    track = lambda r: "" if r.get("track", "clean") == "clean" else r["track"].replace("-", "_") + "_"
    return {f"novel_{track(r)}{r['n_way']}way_{r['n_shot']}shot": {"accuracy": round(r["accuracy"], 4),
                                                         "ci95": round(r["ci95"], 4),
                                                         "episodes": r["episodes"], "seed": r["seed"],
                                                         "support_views": r.get("support_views", 0)}
            for r in rows}


SWITCH = {"card": None, "on": True, "off": False}   # --flip-average / --photo-blend -> fewshot_rows' override


def print_table(rows: list[dict]) -> None:
    print(f"{'model':<16} {'track':<10} {'way':>3} {'shot':>4} {'episodes':>8}  {'accuracy':>16} {'seconds':>8}")
    for r in rows:
        print(f"{r['model']:<16} {r.get('track', 'clean'):<10} {r['n_way']:>3} {r['n_shot']:>4} {r['episodes']:>8}  "
              f"{100 * r['accuracy']:6.2f} +- {100 * r['ci95']:4.2f}% {r['seconds']:>8.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pokedemo.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    few = commands.add_parser("fewshot", help="few-shot accuracy on the novel species")
    few.add_argument("--model", action="append", choices=MODEL_NAMES, help="repeatable; default: all")
    few.add_argument("--checkpoint", type=Path, help="weights for a single --model (default checkpoints/MODEL)")
    few.add_argument("--track", action="append", choices=TRACKS, help="repeatable; default: clean")
    few.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    few.add_argument("--episodes", type=int, default=600)
    few.add_argument("--seed", type=int, default=0)
    few.add_argument("--no-centre", dest="centre", action="store_false", help="skip SimpleShot centring")
    few.add_argument("--split", choices=["novel", "val"], default="novel",
                     help="novel: the benchmark (test backgrounds); val: the model-selection species (val backgrounds)")
    few.add_argument("--support-views", type=int, default=SUPPORT_VIEWS,
                     help="photo-like views per support for photo queries (0: plain prototypes)")
    few.add_argument("--flip-average", choices=("card", "on", "off"), default="card",
                     help="test-time mirror averaging: as the model's card says (the page), or forced on or off")
    few.add_argument("--photo-blend", choices=("card", "on", "off"), default="card",
                     help="photos blended with their cut-out (`segment.PhotoBlend`): as the card says (the page), "
                          "or forced on or off")
    few.add_argument("--threads", type=int, default=2)
    few.add_argument("--device", default=None, help="auto (CUDA when present; the default, or $POKEDEMO_DEVICE) | cpu | cuda")
    few.add_argument("--json", type=Path, help="write the rows as JSON here")
    few.add_argument("--record", action="store_true", help="store the figures in each checkpoint's card (`scores`)")
    valmap = commands.add_parser("valmap", help="t-SNE maps of the val species for the app (assets/val_map.json)")
    valmap.add_argument("--out", type=Path, default=Path("assets/val_map.json"))
    valmap.add_argument("--threads", type=int, default=2)
    grid = commands.add_parser("render-grid", help="a grid of photo-like renderings for docs/")
    grid.add_argument("--out", type=Path, default=Path("docs/render-grid.png"))
    grid.add_argument("--threads", type=int, default=1)
    curve = commands.add_parser("finetune-curve", help="student fine-tuning: val accuracy vs steps vs seconds")
    curve.add_argument("--episodes", type=int, default=100)
    curve.add_argument("--track", action="append", choices=TRACKS, help="repeatable; default: clean")
    curve.add_argument("--steps", type=int, nargs="+", default=[0, 5, 10, 20, 40])
    curve.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.5],
                       help="shares of the parameters trained (the last layers'); 0 steps is measured once")
    curve.add_argument("--copies", type=int, default=FineTuneConfig().augment_copies,
                       help="augmented views of each support a step trains on (default: the page's)")
    curve.add_argument("--threads", type=int, default=2)
    curve.add_argument("--photo-copies", type=int, default=FineTuneConfig().photo_copies,
                       help="of each step's augmented copies, how many show the supports rendered like photos "
                            "(tasks with photo queries; default: the page's)")
    curve.add_argument("--out", type=Path, default=Path("docs/finetune-curve.json"))
    none = commands.add_parser("none-threshold", help='"none of these" thresholds, chosen on the val species')
    none.add_argument("--model", action="append", choices=("teacher", "student"), help="repeatable; default: both")
    none.add_argument("--keep", type=float, default=0.95, help="share of known queries the threshold keeps")
    none.add_argument("--episodes", type=int, default=300)
    none.add_argument("--threads", type=int, default=2)
    none.add_argument("--record", action="store_true", help="store the threshold in each card (`none_threshold`)")
    for option, text in (("flip-average", "test-time mirror averaging"),
                         ("photo-blend", "photos blended with their cut-out by the shipped segmenter"),
                         ("inference-dtype", f"test-time arithmetic in {LOW_DTYPE} where this machine runs it faster")):
        extra = commands.add_parser(option, help=f"{text}, measured and chosen on the val species")
        extra.add_argument("--model", action="append", choices=("teacher", "student"), help="repeatable; default: both")
        extra.add_argument("--episodes", type=int, default=600)
        extra.add_argument("--threads", type=int, default=2)
        extra.add_argument("--json", type=Path, help="write the measurements as JSON here")
        extra.add_argument("--record", action="store_true",
                           help="store the choice in each card (the page and the benchmark follow it)")
        if option == "photo-blend":
            extra.add_argument("--weight", type=float, default=BLEND_WEIGHT, help="the cut-out's weight in the blend")
    scoreboard = commands.add_parser("all", help="the compression scoreboard: docs/benchmarks.md and .json")
    scoreboard.add_argument("--episodes", type=int, default=600)
    scoreboard.add_argument("--fine-tune-episodes", type=int, default=100)
    scoreboard.add_argument("--threads", type=int, default=2)
    scoreboard.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args(argv)
    command = "python -m pokedemo.bench " + " ".join(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    try:
        if args.command == "fewshot":
            if args.checkpoint and len(args.model or MODEL_NAMES) > 1:
                raise ValueError("--checkpoint names the weights of one model: give exactly one --model with it")
            rows, rendered = [], {}
            if args.record and args.split != "novel":
                raise ValueError("--record stores the benchmark's figures: the novel split only")
            if args.record and (args.flip_average, args.photo_blend) != ("card", "card"):
                raise ValueError("--record stores what the page does: leave --flip-average and --photo-blend as "
                                 "the card says")
            novel = SpriteDataset.load().subset(split_species()[args.split])
            for name in args.model or MODEL_NAMES:
                model_rows = fewshot_rows(name, args.shots, args.episodes, args.seed, args.checkpoint, args.centre,
                                          novel, args.track or ["clean"], rendered, str(pick_device(args.device)),
                                          args.support_views, "val" if args.split == "val" else "test",
                                          SWITCH[args.flip_average], SWITCH[args.photo_blend])
                if args.record and name not in ("pixels", "random-student"):
                    record_scores(args.checkpoint or CHECKPOINT_DIR / f"{name}.safetensors", card_scores(model_rows),
                                  command)
                rows += model_rows
            print_table(rows)
            if args.json:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(rows, indent=1))
        elif args.command == "none-threshold":
            for name in args.model or ("teacher", "student"):
                row = none_threshold(name, args.keep, args.episodes)
                check = none_threshold(name, args.keep, args.episodes, split="novel", threshold=row["threshold"])
                row["novel"] = {k: check[k] for k in ("known_kept", "unknown_turned_away")}
                print(json.dumps(row))
                if args.record:
                    record_card(CHECKPOINT_DIR / f"{name}.safetensors", {"none_threshold": row},
                                command)
        elif args.command in ("flip-average", "photo-blend", "inference-dtype"):
            names, option = args.model or ("teacher", "student"), args.command.replace("-", "_")
            if option == "photo_blend" and not args.weight > 0:
                raise ValueError(f"--weight: the cut-out's weight must be above 0, got {args.weight}")
            if args.record and "teacher" in names and option != "inference_dtype":
                raise ValueError("the teacher looks once on the page: a second ResNet18 pass does not fit the page's "
                                 "CPU budget per task (docs/robustness.md); measure it without --record")
            choices = []
            for name in names:
                row = val_choice(name, option, args.episodes, blend_weight=getattr(args, "weight", BLEND_WEIGHT))
                print(json.dumps(row))
                choices.append(row)
                if args.record:
                    value = {"flip_average": row["chosen"], "inference_dtype": LOW_DTYPE if row["chosen"] else None,
                             "photo_blend": row.get("entry") if row["chosen"] else None}[option]
                    record_card(CHECKPOINT_DIR / f"{name}.safetensors", {option: value, f"{option}_val": row}, command)
            if args.json:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps({"command": command, "models": choices}, indent=1))
        elif args.command == "render-grid":
            render_grid(args.out)
        elif args.command == "valmap":
            val_map(args.out)
        elif args.command == "finetune-curve":
            from .scoreboard import fine_tune_curve

            if args.photo_copies < 0 or min(args.steps) < 0:
                raise ValueError("--photo-copies and --steps count things: 0 or more")
            if args.copies < 1 or not all(0 < f <= 1 for f in args.fractions):
                raise ValueError("--copies is 1 or more, --fractions between 0 (left out) and 1")
            student, card = load_checkpoint(CHECKPOINT_DIR / "student.safetensors")
            val = SpriteDataset.load().subset(split_species()["val"])
            curve = fine_tune_curve(student, card, val, args.episodes, steps_list=args.steps,
                                    tracks=args.track or ("clean",), photo_copies=args.photo_copies,
                                    fractions=tuple(args.fractions), copies=args.copies)
            args.out.write_text(json.dumps({"command": "python -m pokedemo.bench " + " ".join(sys.argv[1:]),
                                            "curve": curve}, indent=1))
        else:
            from .scoreboard import run_scoreboard
            run_scoreboard(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
