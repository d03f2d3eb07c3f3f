"""Student ablations at a reduced budget. Each variant trains with the same seed and epochs (from scratch
unless its flags say `--init`) and is scored with the benchmark protocol.

    python scripts/ablations.py [--epochs 12] [--out docs/ablations.md]          # loss: terms, alpha, T, colour
    python scripts/ablations.py --set robust --epochs 8 --out docs/robust-ablations.md   # photo-like training
"""
from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pokedemo.bench import fewshot_rows  # noqa: E402
from pokedemo.compress import mflops  # noqa: E402
from pokedemo.models import build_model  # noqa: E402
from pokedemo.segment import file_digest  # noqa: E402
from pokedemo.tracks import TRACKS  # noqa: E402
from pokedemo.train import main as train_main  # noqa: E402

VARIANTS = {  # flags spelled out in full, so a later change of defaults does not change a row
    "student alone (SupCon only, no teacher terms)": ["--alpha", "0", "--beta", "0"],
    "source report loss (alpha 0.1, T 4)": ["--alpha", "0.1", "--temperature", "4", "--beta", "0"],
    "+ embedding term (alpha 0.1, T 4, beta 1)": ["--alpha", "0.1", "--temperature", "4", "--beta", "1"],
    "+ embedding term, alpha 0.5": ["--alpha", "0.5", "--temperature", "4", "--beta", "1"],
    "+ embedding term, T 2": ["--alpha", "0.1", "--temperature", "2", "--beta", "1"],
    "+ embedding term, no colour augmentation": ["--alpha", "0.1", "--temperature", "4", "--beta", "1", "--no-colour"],
    "+ embedding term, alpha 0.9": ["--alpha", "0.9", "--temperature", "4", "--beta", "1"],
    "source report loss, alpha 0.5": ["--alpha", "0.5", "--temperature", "4", "--beta", "0"],
    "+ embedding term, alpha 1 (no SupCon term)": ["--alpha", "1", "--temperature", "4", "--beta", "1"],
}
SHIPPED_LOSS = ["--alpha", "0.9", "--temperature", "4", "--beta", "1"]
SHIPPED_RECIPE = [*SHIPPED_LOSS, "--render-p", "0.7", "--teacher-view", "clean", "--lr", "1e-3",
                  "--init", "runs/student-gpu.safetensors"]
ROBUST_VARIANTS = {  # the shipped loss, with the robust teacher; what the student sees and what the teacher sees
    "no photo-like views (the v1 recipe)": [*SHIPPED_LOSS, "--render-p", "0"],
    "70% photo-like views, teacher targets on the clean picture": [*SHIPPED_LOSS, "--render-p", "0.7",
                                                                   "--teacher-view", "clean"],
    "70% photo-like views, teacher targets on the same view": [*SHIPPED_LOSS, "--render-p", "0.7",
                                                               "--teacher-view", "same"],
    "40% photo-like views, teacher on clean": [*SHIPPED_LOSS, "--render-p", "0.4", "--teacher-view", "clean"],
    "90% photo-like views, teacher on clean": [*SHIPPED_LOSS, "--render-p", "0.9", "--teacher-view", "clean"],
    # warm start from the v1 (clean) student: git show 99118f3:checkpoints/student.safetensors (and .json)
    "70% photo-like views, teacher on clean, from the v1 student": [
        *SHIPPED_LOSS, "--render-p", "0.7", "--teacher-view", "clean", "--init", "runs/student-v1.safetensors"],
    # what else teaches robustness, each from the student shipped at 4502943 (`git show
    # 4502943:checkpoints/student.safetensors`, kept as runs/student-gpu.safetensors), with its recipe
    "the shipped recipe continued, from the shipped student": [*SHIPPED_RECIPE],
    "+ dead-leaves training backgrounds": [*SHIPPED_RECIPE, "--leaves"],
    "+ MixStyle (p 0.5)": [*SHIPPED_RECIPE, "--mixstyle", "0.5"],
    "+ dead leaves and MixStyle": [*SHIPPED_RECIPE, "--leaves", "--mixstyle", "0.5"],
    # what closes the gap to the teacher on photos, from the shipped student with its recipe otherwise
    "teacher targets on the same (photo-like) view": [*SHIPPED_LOSS, "--render-p", "0.7", "--teacher-view", "same",
                                                     "--lr", "1e-3", "--init", "runs/student-gpu.safetensors"],
    "85% photo-like views": [*SHIPPED_LOSS, "--render-p", "0.85", "--teacher-view", "clean", "--lr", "1e-3",
                             "--init", "runs/student-gpu.safetensors"],
    "embedding term weighted 3": ["--alpha", "0.9", "--temperature", "4", "--beta", "3", "--render-p", "0.7",
                                  "--teacher-view", "clean", "--lr", "1e-3", "--init", "runs/student-gpu.safetensors"],
    "teacher targets from the picture and its mirror image": [*SHIPPED_RECIPE, "--teacher-mirror"],
    "teacher targets on the same view, with its mirror image": [
        *SHIPPED_LOSS, "--render-p", "0.7", "--teacher-view", "same", "--teacher-mirror", "--lr", "1e-3",
        "--init", "runs/student-gpu.safetensors"],
    # a second round of the row above that ships at 133b8da, from that student (`git show
    # 133b8da:checkpoints/student.safetensors`, kept as runs/student-133b8da.safetensors)
    "teacher targets on the same view, a second round from the student shipped at 133b8da": [
        *SHIPPED_LOSS, "--render-p", "0.7", "--teacher-view", "same", "--lr", "1e-3",
        "--init", "runs/student-133b8da.safetensors"],
    "the same second round at half the learning rate": [
        *SHIPPED_LOSS, "--render-p", "0.7", "--teacher-view", "same", "--lr", "5e-4",
        "--init", "runs/student-133b8da.safetensors"],
    # capacity: that student grown to the 100,000-number budget (`train.grow_into`), then the same round
    "the student shipped at 133b8da grown from 93,920 to 99,680 numbers (last width 216 -> 248), then the same round": [
        *SHIPPED_LOSS, "--render-p", "0.7", "--teacher-view", "same", "--lr", "1e-3",
        "--init", "runs/student-133b8da.safetensors", "--arguments", '{"widths": [48, 64, 96, 128, 176, 248]}'],
    # the teacher's distances between pictures as a target (`losses.relation_loss`), from that student
    "+ relational term (weight 5), the same round from the student shipped at 133b8da": [
        *SHIPPED_LOSS, "--render-p", "0.7", "--teacher-view", "same", "--lr", "1e-3", "--relation", "5",
        "--init", "runs/student-133b8da.safetensors"],
    "+ relational term (weight 20), the same round from the student shipped at 133b8da": [
        *SHIPPED_LOSS, "--render-p", "0.7", "--teacher-view", "same", "--lr", "1e-3", "--relation", "20",
        "--init", "runs/student-133b8da.safetensors"],
    "+ relational term (weight 100), the same round from the student shipped at 133b8da": [
        *SHIPPED_LOSS, "--render-p", "0.7", "--teacher-view", "same", "--lr", "1e-3", "--relation", "100",
        "--init", "runs/student-133b8da.safetensors"],
    "+ relational term (weight 300), the same round from the student shipped at 133b8da": [
        *SHIPPED_LOSS, "--render-p", "0.7", "--teacher-view", "same", "--lr", "1e-3", "--relation", "300",
        "--init", "runs/student-133b8da.safetensors"],
    # the grown student given the time to use its new channels: run alone with --epochs 16 --only 23
    "the student shipped at 133b8da grown to 99,680 numbers, then 16 epochs of the same round": [
        *SHIPPED_LOSS, "--render-p", "0.7", "--teacher-view", "same", "--lr", "1e-3",
        "--init", "runs/student-133b8da.safetensors", "--arguments", '{"widths": [48, 64, 96, 128, 176, 248]}'],
    # a better teacher to distil from: the uniform soup of the shipped teacher and its 32-epoch GPU continuation
    # (`python -m pokedemo.train teacher --soup runs/teacher-robust2.safetensors runs/teacher-gpu.safetensors
    # --out runs/teacher-soup.safetensors`; training.md)
    "the same round from the student shipped at 133b8da, distilled from the teacher soup": [
        *SHIPPED_LOSS, "--render-p", "0.7", "--teacher-view", "same", "--lr", "1e-3",
        "--init", "runs/student-133b8da.safetensors", "--teacher", "runs/teacher-soup.safetensors"],
    # spatial resolution at the same 93,920 numbers (strides hold no weights, so the shipped blocks fit as they are):
    # the last two blocks kept at 8x8 instead of 4x4 (1.8x the multiply-adds), or the second at 16x16 and the
    # fourth at 8x8 (1.6x)
    "the student shipped at 133b8da with its last two blocks at 8x8 px (strides 1-2-1-1-1), then the same round": [
        *SHIPPED_LOSS, "--render-p", "0.7", "--teacher-view", "same", "--lr", "1e-3",
        "--init", "runs/student-133b8da.safetensors", "--arguments", '{"strides": [1, 2, 1, 1, 1]}'],
    "the student shipped at 133b8da with its second block at 16x16 px and its fourth at 8x8 (strides 1-1-2-1-2), then the same round": [
        *SHIPPED_LOSS, "--render-p", "0.7", "--teacher-view", "same", "--lr", "1e-3",
        "--init", "runs/student-133b8da.safetensors", "--arguments", '{"strides": [1, 1, 2, 1, 2]}'],
    # a teacher with twice the resolution in every stage: the shipped soup without ResNet18's max-pool, 3 more epochs
    # (`python -m pokedemo.train teacher --init checkpoints/teacher.safetensors --arguments '{"stem_pool": false}'
    # --render-p 0.7 --lr 1e-3 --epochs 3 --threads 2 --run-dir runs/teacher-nopool --out runs/teacher-nopool.safetensors`)
    "the same round from the student shipped at 133b8da, distilled from the teacher without its max-pool": [
        *SHIPPED_LOSS, "--render-p", "0.7", "--teacher-view", "same", "--lr", "1e-3",
        "--init", "runs/student-133b8da.safetensors", "--teacher", "runs/teacher-nopool.safetensors"],
    # where to look: an attention pool (`models.Student`, pool "attention": a 1x1 conv scores each position of the
    # last map, 216 more numbers) in place of the global average, so that a photo's background can be left out; its
    # scores start at 0, so the round starts from the shipped student's embeddings exactly
    "the student shipped at 133b8da with an attention pool, then the same round": [
        *SHIPPED_LOSS, "--render-p", "0.7", "--teacher-view", "same", "--lr", "1e-3",
        "--init", "runs/student-133b8da.safetensors", "--arguments", '{"pool": "attention"}'],
    "the student shipped at 133b8da with an attention pool, then the round with teacher targets on the clean picture": [
        *SHIPPED_LOSS, "--render-p", "0.7", "--teacher-view", "clean", "--lr", "1e-3",
        "--init", "runs/student-133b8da.safetensors", "--arguments", '{"pool": "attention"}'],
    # on the val species the photo-crop backgrounds are the hard kind (5-shot photo track, the shipped student: solid
    # 94.6, gradient 94.5, texture 91.9, photo 84.5; docs/results/background-kinds-student.json): more photographs
    # to train on, nine of scikit-image's sample pictures besides the pool's four (`render.EXTRA_TRAIN_PHOTOS`)
    "the same round from the student shipped at 133b8da, with scikit-image's photographs among the backgrounds": [
        *SHIPPED_LOSS, "--render-p", "0.7", "--teacher-view", "same", "--lr", "1e-3", "--more-photos",
        "--init", "runs/student-133b8da.safetensors"],
    # where the teacher looks: attention transfer from its layer3 maps (4x4) to the student's last maps (4x4) on
    # the same view (`losses.attention_transfer_loss`)
    "+ attention transfer (weight 2), the same round from the student shipped at 133b8da": [
        *SHIPPED_LOSS, "--render-p", "0.7", "--teacher-view", "same", "--lr", "1e-3", "--attention", "2",
        "--init", "runs/student-133b8da.safetensors"],
    "+ attention transfer (weight 10), the same round from the student shipped at 133b8da": [
        *SHIPPED_LOSS, "--render-p", "0.7", "--teacher-view", "same", "--lr", "1e-3", "--attention", "10",
        "--init", "runs/student-133b8da.safetensors"],
    # both changes that each gained about the noise (rows 25 and 27), from the student shipped at a52c553 (`git show
    # a52c553:checkpoints/student.safetensors`, and its .json: the same weights as runs/student-133b8da, its card
    # with the photo blend) and the teacher shipped since fb85021 (without its max-pool; `git show
    # fb85021:checkpoints/teacher.safetensors` once another is shipped): the student shipped since 5bae886
    # (docs/photo-gap.md; seeded, so this row's weights are the shipped file's bytes)
    "the student shipped at a52c553 with its last two blocks at 8x8 px, distilled from the teacher without its max-pool shipped since fb85021": [
        *SHIPPED_LOSS, "--render-p", "0.7", "--teacher-view", "same", "--lr", "1e-3",
        "--init", "runs/student-a52c553.safetensors", "--teacher", "checkpoints/teacher.safetensors",
        "--arguments", '{"strides": [1, 2, 1, 1, 1]}'],
    # the training photographs in other colours (`--recolour-photos`, `render.make_backgrounds(recolour=True)`: a hue
    # turn, a saturation and a contrast per crop), so that four (or thirteen) scenes come in colours they do not have;
    # from the student shipped since 5bae886 (`git show 5bae886:checkpoints/student.safetensors`, and its .json,
    # kept as runs/student-5bae886.*) and the teacher shipped since fb85021, the round that made it otherwise
    "the student shipped since 5bae886, the same round with its training photographs recoloured": [
        *SHIPPED_LOSS, "--render-p", "0.7", "--teacher-view", "same", "--lr", "1e-3", "--recolour-photos",
        "--init", "runs/student-5bae886.safetensors", "--teacher", "checkpoints/teacher.safetensors",
        "--arguments", '{"strides": [1, 2, 1, 1, 1]}'],
    "the student shipped since 5bae886, the same round with scikit-image's photographs too, all recoloured": [
        *SHIPPED_LOSS, "--render-p", "0.7", "--teacher-view", "same", "--lr", "1e-3", "--recolour-photos",
        "--more-photos", "--init", "runs/student-5bae886.safetensors", "--teacher", "checkpoints/teacher.safetensors",
        "--arguments", '{"strides": [1, 2, 1, 1, 1]}'],
}
# the teacher the robust rows were run with: the one shipped until the soup (`git show
# 2ebfb6e:checkpoints/teacher.safetensors`, made by training.md's `--run-dir runs/teacher-robust2`)
ROBUST_TEACHER = "runs/teacher-robust2.safetensors"
ROW_NUMBERS = {name: number for number, name in enumerate(ROBUST_VARIANTS, start=1)}   # runs/robust-ablation/N


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--episodes", type=int, default=600)
    parser.add_argument("--out", type=Path, default=Path("docs/ablations.md"))
    parser.add_argument("--only", nargs="*", help="run only these variant numbers (1-based)")
    parser.add_argument("--set", choices=["loss", "robust"], default="loss")
    parser.add_argument("--teacher", default=ROBUST_TEACHER,
                        help="robust set: the teacher to distil from, where a row does not name its own")
    args = parser.parse_args()
    if args.set == "robust":
        return robust(args)
    results_file = args.out.with_suffix(".json")
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    for number, (name, extra) in enumerate(VARIANTS.items(), start=1):
        if args.only and str(number) not in args.only:
            continue
        weights = Path(f"runs/ablation/{number}.safetensors")
        code = train_main(["student", "--epochs", str(args.epochs), "--run-dir", f"runs/ablation/{number}",
                           "--out", str(weights), "--threads", "2", *extra])
        if code:
            return code
        rows = fewshot_rows("student", (1, 5), args.episodes, checkpoint=weights)
        card = json.loads(weights.with_suffix(".json").read_text())
        results[name] = {"flags": extra, "epochs": args.epochs, "val_5shot": card["val_5shot"],
                         "training_seconds": card["training_seconds"],
                         **{f"{r['n_shot']}-shot": [r["accuracy"], r["ci95"]] for r in rows}}
        results_file.write_text(json.dumps(results, indent=1))
    lines = ["# Student ablations", "", f"Made by `python scripts/ablations.py --epochs {args.epochs}` (each variant "
             f"trained from scratch for {args.epochs} epochs, seed 0, with the shipped teacher; scored on the novel "
             f"species with the benchmark protocol, {args.episodes} episodes). The best **val** variants are then "
             "trained for 40 epochs and the better on val ships (README, Numbers); the novel columns are reported, "
             "never used to choose.", "",
             "| variant | flags | val 5-shot (%) | novel 1-shot (%) | novel 5-shot (%) | training s |",
             "|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | `{shlex.join(r['flags']) or '(defaults)'}` | {100 * r['val_5shot']:.2f} | "
                     f"{100 * r['1-shot'][0]:.2f} +- {100 * r['1-shot'][1]:.2f} | "
                     f"{100 * r['5-shot'][0]:.2f} +- {100 * r['5-shot'][1]:.2f} | {r['training_seconds']:.0f} |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def row_digest(name: str, results: dict) -> str | None:
    """The SHA-256 of a row's weights: of its run's file where it is on disk, else as the row recorded it."""
    weights = Path(f"runs/robust-ablation/{ROW_NUMBERS.get(name)}.safetensors")
    return file_digest(weights) if weights.exists() else results[name].get("sha256")


def shipped_row(results: dict) -> str:
    """A sentence naming the best row on val and, when the student shipped now was trained by one of the rows
    (its card's command writes to that row's run folder, or the row's weights are the shipped file: training
    is seeded, so a row that repeats the shipped round makes the same bytes), that row."""
    best = max(results, key=lambda name: results[name]["val"]["mean"])
    command = json.loads(Path("checkpoints/student.json").read_text())["command"]
    shipped_digest = file_digest(Path("checkpoints/student.safetensors"))
    shipped = next((name for name in results if f"runs/robust-ablation/{ROW_NUMBERS.get(name)} " in f"{command} "
                    or row_digest(name, results) == shipped_digest), None)
    return f" Best on val: \"{best}\"." + (f" The student shipped now is \"{shipped}\"." if shipped else "")


def val_checks(folder: Path = Path("docs/results")) -> str:
    """A sentence with the mean of each row's check on the val tracks (its docs/results/val-check-rowN.json)."""
    rows = {int(f.stem.removeprefix("val-check-row")): json.loads(f.read_text())
            for f in folder.glob("val-check-row*.json")}
    means = [f"row {n} {100 * statistics.mean(r['accuracy'] for r in rows[n]):.2f} ({len(rows[n])} cells)"
             for n in sorted(rows)]
    return f" Checked so, the mean of the cells: {', '.join(means)}." if means else ""


def student_mflops(flags: list[str]) -> float:
    """The MFLOPs per 64 px picture (`compress.mflops`) of the student a row's flags build (its --arguments)."""
    arguments = json.loads(flags[flags.index("--arguments") + 1]) if "--arguments" in flags else {}
    return mflops(build_model("student", **arguments))


def robust(args) -> int:
    """The robust set: val per track (the mean selects), novel per track (reported, never used to choose)."""
    results_file = args.out.with_suffix(".json")
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    for name, extra in ROBUST_VARIANTS.items():
        number = ROW_NUMBERS[name]
        if args.only and str(number) not in args.only:
            continue
        weights = Path(f"runs/robust-ablation/{number}.safetensors")
        code = train_main(["student", "--teacher", args.teacher, "--epochs", str(args.epochs), "--run-dir",
                           f"runs/robust-ablation/{number}", "--out", str(weights), "--threads", "2", *extra])
        if code:
            return code
        card = json.loads(weights.with_suffix(".json").read_text())
        rows = fewshot_rows("student", (5,), args.episodes, checkpoint=weights, tracks=TRACKS)
        results[name] = {"flags": extra, "epochs": args.epochs, "val": card["val_tracks"],
                         "training_seconds": card["training_seconds"], "sha256": file_digest(weights),
                         "novel_5shot": {r["track"]: [r["accuracy"], r["ci95"]] for r in rows}}
        results_file.write_text(json.dumps(results, indent=1))
    for name in results:                        # rows trained before the digest was recorded, where on disk
        if "sha256" not in results[name] and (digest := row_digest(name, results)):
            results[name]["sha256"] = digest
    results_file.write_text(json.dumps(results, indent=1))
    lines = ["# Robust student ablations", "",
             f"Made by `python scripts/ablations.py --set robust --epochs {args.epochs} --out {args.out}`: each "
             f"variant trained for the epochs it says (seed 0), from scratch unless it says otherwise, with the robust teacher "
             f"(`{args.teacher}`, shipped until the teacher soup) unless its flags name another, the loss of the shipped student. **val** columns: 5-way 5-shot on the val "
             "species per track (photo tracks rendered with the val backgrounds), their mean selects. **novel** "
             f"columns: the benchmark ({args.episodes} episodes, 5-shot, test backgrounds), reported only. **MFLOPs "
             "per image**: the row's student network at 64 px (`pokedemo.compress.mflops`). \"The "
             "shipped student\" in a row's name is the one shipped at 4502943 (`--init runs/student-gpu.safetensors`)."
             + shipped_row(results) + " Rows within about 0.3 points of each other are inside the noise of the "
             "300 val episodes; a row replaces the shipped student only when it also wins on the val tracks with the "
             "page's classifier by more than that (600 episodes, 1- and 5-shot, two looks: `python -m pokedemo.bench "
             "fewshot --split val --model student --checkpoint runs/robust-ablation/N.safetensors --track clean "
             "--track art --track photo --track photo-both --flip-average on --json docs/results/val-check-rowN.json`)."
             + val_checks(), "",
             "| # | variant | val mean | val clean / art / photo / photo-both | novel clean | novel art | novel photo "
             "| novel photo-both | MFLOPs per image | epochs | training s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    pct = lambda v: f"{100 * v[0]:.2f} +- {100 * v[1]:.2f}"
    for name, r in results.items():
        val = " / ".join(f"{100 * r['val'][t]:.1f}" for t in TRACKS)
        lines.append(f"| {ROW_NUMBERS[name]} | {name} (`{shlex.join(r['flags'])}`) | {100 * r['val']['mean']:.2f} "
                     f"| {val} | "
                     + " | ".join(pct(r["novel_5shot"][t]) for t in TRACKS)
                     + f" | {student_mflops(r['flags']):.1f} | {r['epochs']} | {r['training_seconds']:.0f} |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
