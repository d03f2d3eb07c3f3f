"""docs/robustness.md from the measured JSON (nothing typed by hand), in this order (the student's card
says whether it looks twice before the benchmark records it):

    python -m pokedemo.bench flip-average --model student --record --json docs/results/val-flip-student.json
    python -m pokedemo.bench flip-average --model teacher --json docs/results/val-flip-teacher.json
    python -m pokedemo.bench photo-blend --model student --record --json docs/results/val-blend-student.json
    python -m pokedemo.bench photo-blend --model teacher --json docs/results/val-blend-teacher.json
    python -m pokedemo.bench inference-dtype --model teacher --record --json docs/results/val-dtype-teacher.json
    python -m pokedemo.bench fewshot --model pixels --model random-student --model teacher --model student \
        --model paper-student --track clean --track art --track photo --track photo-both \
        --json docs/results/tracks.json --record
    python -m pokedemo.bench finetune-curve --episodes 40 --steps 0 5 10 20 \
        --track clean --track art --track photo --track photo-both --out docs/finetune-curve.json
    python scripts/robustness_report.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from pokedemo.bench import BLEND_WEIGHT  # noqa: E402
from pokedemo.tracks import TRACKS  # noqa: E402


def tracks_table(rows: list[dict]) -> list[str]:
    cell = lambda r: f"{100 * r['accuracy']:.2f} +- {100 * r['ci95']:.2f}" if r else ""
    by = {(r["model"], r["track"], r["n_shot"]): r for r in rows}
    models = list(dict.fromkeys(r["model"] for r in rows))
    lines = ["| model | " + " | ".join(f"{t} 1-shot | {t} 5-shot" for t in TRACKS) + " |",
             "|---|" + "---|" * (2 * len(TRACKS))]
    for model in models:
        lines.append(f"| {model} | " + " | ".join(f"{cell(by.get((model, t, 1)))} | {cell(by.get((model, t, 5)))}"
                                                  for t in TRACKS) + " |")
    return lines


def curve_table(curve: list[dict]) -> list[str]:
    lines = ["| track | prototypes | steps | trained fraction | views a step | photo copies | val 5-shot (%) | "
             "s per episode |", "|---|---|---|---|---|---|---|---|"]
    for c in curve:   # curves made before `augment_copies` was recorded trained on 2 augmented views
        lines.append(f"| {c.get('track', 'clean')} | {'photo-ready' if c.get('photo_ready') else 'plain'} | "
                     f"{c['steps']} | {c['train_fraction']} | {c.get('augment_copies', 2)} | "
                     f"{c.get('photo_copies', 0)} | {100 * c['accuracy']:.2f} +- {100 * c['ci95']:.2f} | "
                     f"{c['seconds']:.2f} |")
    return lines


def curves_section(pattern: str, title: str) -> list[str]:
    """Fine-tuning curves that differ in one setting, measured on the same episodes (docs/results/PATTERN), in one
    table under `title`."""
    files = sorted((ROOT / "docs/results").glob(pattern))
    if len(files) < 2:
        return []
    curves = [json.loads(f.read_text()) for f in files]
    before = any("augment_copies" not in c for curve in curves for c in curve["curve"])
    return [f"## {title}", "",
            "Made by " + ", ".join(f"`{curve['command']}`" for curve in curves) + " (the same episodes in each" +
            ("; made when a step trained on 2 augmented views of each support, the default then: add `--copies 2` "
             "to repeat them" if before else "") + "):", "",
            *curve_table([c for curve in curves for c in curve["curve"]]), ""]


def views_section() -> list[str]:
    """Photo-ready prototypes on the val species (how they were chosen), from docs/results/val-views-*.json."""
    files = {views: ROOT / f"docs/results/val-views-{views}.json" for views in (0, 4)}
    if not all(f.exists() for f in files.values()):
        return []
    rows = {views: {(r["model"], r["track"], r["n_shot"]): r for r in json.loads(f.read_text())}
            for views, f in files.items()}
    lines = ["## Photo-ready prototypes, chosen on the val species", "",
             "Made by `python -m pokedemo.bench fewshot --split val --model teacher --model student --track clean "
             "--track art --track photo --track photo-both --support-views V --json docs/results/val-views-V.json` "
             "for V = 0 and 4 (val species, val backgrounds for the queries):", "",
             "| model | track | shots | plain prototypes | photo-ready (4 views) |", "|---|---|---|---|---|"]
    for key, plain in rows[0].items():
        ready = rows[4].get(key)
        if ready:
            lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {100 * plain['accuracy']:.2f} +- {100 * plain['ci95']:.2f} "
                         f"| {100 * ready['accuracy']:.2f} +- {100 * ready['ci95']:.2f} |")
    return lines + [""]


def choice_rows(measured: list[dict]) -> list[str]:
    """The table rows of `bench flip-average` / `bench photo-blend` JSON files: each cell without and with, and the means."""
    lines = []
    for row in (m["models"][0] for m in measured):
        for key, off in row["off"].items():
            track, shots = key.split(" ")
            lines.append(f"| {row['model']} | {track} | {shots.split('-')[0]} | {100 * off:.2f} | "
                         f"{100 * row['on'][key]:.2f} |")
        lines.append(f"| {row['model']} | **mean** | | **{100 * row['mean_off']:.2f}** | **{100 * row['mean_on']:.2f}** |")
    return lines


def flip_section() -> list[str]:
    """Test-time mirror averaging on the val species (how it was chosen), from docs/results/val-flip-*.json,
    with its cost on the page from docs/task-profile-now.json."""
    files = [ROOT / f"docs/results/val-flip-{name}.json" for name in ("student", "teacher")]
    if not all(f.exists() for f in files):
        return []
    measured = [json.loads(f.read_text()) for f in files]
    lines = ["## Looking twice: a picture and its mirror image, chosen on the val species", "",
             "A model may embed a picture as the normalised mean of its own and its mirror image's embeddings "
             "(test-time augmentation, `Embedder.embed`: a second pass for each picture). Made by "
             + " and ".join(f"`{m['command']}`" for m in measured)
             + f" (val species, val backgrounds, photo-ready prototypes, {measured[0]['models'][0]['episodes']} "
             f"episodes; `chosen`: when it raises the mean of the {len(measured[0]['models'][0]['off'])}):", "",
             "| model | track | shots | one look | with the mirror image |", "|---|---|---|---|---|"]
    lines += choice_rows(measured)
    better = {row["model"]: (sum(row["on"][key] > off for key, off in row["off"].items()), len(row["off"]))
              for row in (m["models"][0] for m in measured)}
    profile = json.loads((ROOT / "docs/task-profile-now.json").read_text())
    answer = next(v for k, v in profile["own"]["phases"].items() if k.startswith("teacher and student answer"))
    cards = {name: json.loads((ROOT / f"checkpoints/{name}.json").read_text()).get("flip_average", False)
             for name in ("student", "teacher")}
    lines += ["", "It raises " + " and ".join(f"the {name}'s accuracy in {k} of the {n}" for name, (k, n) in better.items())
              + ". Shipped with it (`flip_average: true` in the card, written by the command's `--record`; the page, "
              "the API and the benchmark follow the card): " + (", ".join(n for n, on in cards.items() if on) or "none")
              + ". The teacher's `--record` is refused: a second teacher pass would add about as much again as the "
              "page's 'teacher and student answer' phase, nearly all of it the teacher: "
              f"{answer[0]:.3f} CPU s on the visitor's own pictures (`python scripts/profile_task.py`, "
              "docs/task-profile-now.md, the student looking twice; gallery pictures come embedded), "
              f"to a task that takes {profile['own']['served']['cpu_s']:.3f} CPU s served against a budget of "
              "0.5 (the student's second look, before and after: [compare-flip-average.md](compare-flip-average.md)). "
              "Its column above is what it would gain; its rows in the tables stay one look.", ""]
    return lines


def blend_section() -> list[str]:
    """Photos blended with their cut-out on the val species (how it was chosen), from
    docs/results/val-blend-*.json (the student's recorded, the teacher's measured only when present)."""
    files = [f for f in (ROOT / f"docs/results/val-blend-{name}.json" for name in ("student", "teacher")) if f.exists()]
    if not files:
        return []
    measured = [json.loads(f.read_text()) for f in files]
    first = measured[0]["models"][0]
    segmenter = json.loads((ROOT / "checkpoints/segmenter.json").read_text())
    cutter = (("a head on the shipped student's own maps", "`segment.MaskHead`", " of its own")
              if segmenter["architecture"] == "mask-head" else ("a small segmenter", "`pokedemo/segment.py`", ""))
    lines = ["## A photo and its cut-out, chosen on the val species", "",
             "Where a picture is a photo (`images.is_photo`), a model may embed it as the normalised sum of its own "
             f"embedding and {first.get('entry', {}).get('weight', BLEND_WEIGHT)} times its cut-out's: the sprite cut "
             f"out by {cutter[0]} ({cutter[1]}, `checkpoints/segmenter.safetensors`: "
             f"{segmenter['parameters']:,} numbers{cutter[2]}, val IoU {segmenter['val_iou']}; the others trained are in "
             "[photo-gap.md](photo-gap.md)) and put on white (`segment.PhotoBlend`: a segmenter pass and a "
             "second model pass on the photos alone; sprites and pictures on white are untouched, so the clean and "
             "art cells cannot move). Made by " + " and ".join(f"`{m['command']}`" for m in measured)
             + f" (val species, val backgrounds, photo-ready prototypes, the cards' other extras, {first['episodes']} "
             f"episodes; `chosen`: when it raises the mean of the {len(first['off'])} by more than "
             f"{100 * first['margin']:.1f} points, the rule a new student meets in "
             "[robust-ablations.md](robust-ablations.md); the segmenter's epoch and the weight were chosen on these "
             "val pictures, [photo-gap.md](photo-gap.md)):", "",
             "| model | track | shots | the photo alone | with its cut-out |", "|---|---|---|---|---|"]
    lines += choice_rows(measured)
    cards = {name: bool(json.loads((ROOT / f"checkpoints/{name}.json").read_text()).get("photo_blend"))
             for name in ("student", "teacher")}
    lines += ["", "Shipped with it (`photo_blend` in the card, written by the command's `--record`; the page, the API "
              "and the benchmark follow the card): " + (", ".join(n for n, on in cards.items() if on) or "none")
              + ". The teacher's `--record` is refused for the reason its second look is: a second ResNet18 pass "
              "on every photo." + photo_task_cost(), ""]
    return lines


def dtype_section() -> list[str]:
    """The teacher's bfloat16 arithmetic on the val species (how it was chosen), from
    docs/results/val-dtype-teacher.json, with what a task of the visitor's own pictures costs from
    docs/task-profile-now.json."""
    file = ROOT / "docs/results/val-dtype-teacher.json"
    if not file.exists():
        return []
    measured = json.loads(file.read_text())
    row = measured["models"][0]
    profile = json.loads((ROOT / "docs/task-profile-now.json").read_text())
    card = json.loads((ROOT / f"checkpoints/{row['model']}.json").read_text())
    lines = ["## The teacher's arithmetic in bfloat16, chosen on the val species", "",
             "The teacher computes at test time in bfloat16 (`torch.autocast`, channels-last; `Embedder.inference_dtype`) "
             "where the machine runs it faster: measured once when the checkpoint loads, at least 1.2x "
             "(`checkpoint.load_checkpoint`; a CPU without native bfloat16 kernels keeps float32). Made by "
             f"`{measured['command']}` (val species, val backgrounds, photo-ready prototypes, {row['episodes']} episodes; "
             f"`chosen` unless it lowers the mean of the {len(row['off'])} by more than {100 * row['margin']:.1f} points):", "",
             "| model | track | shots | float32 | bfloat16 |", "|---|---|---|---|---|", *choice_rows([measured]), "",
             f"The card says `inference_dtype: {card.get('inference_dtype')}`. With it a task of the visitor's own "
             f"pictures costs the served app {profile['own']['served']['cpu_s']:.2f} CPU s "
             "(`python scripts/profile_task.py`, [task-profile-now.md](task-profile-now.md); budget 0.5): the teacher "
             "without its max-pool computes 3.8x the float32 arithmetic of the one with it.", ""]
    return lines


def photo_task_cost() -> str:
    """A sentence on what a task of phone photos costs the page, from docs/task-profile-now.json."""
    profile = json.loads((ROOT / "docs/task-profile-now.json").read_text())
    photos, plain = profile.get("photos"), profile.get("photos-plain")
    if not photos:
        return ""
    total = sum(cpu for cpu, _ in photos["phases"].values())
    without = (f", {sum(cpu for cpu, _ in plain['phases'].values()):.2f} there without the blend" if plain else
               ", the student without the blend as shipped")
    return (f" A task of 25 phone photos (5-way 5-shot, gallery supports) takes {photos['served']['cpu_s']:.2f} CPU s "
            f"served and {total:.2f} in the app's process{without}, by `python scripts/profile_task.py` "
            "([task-profile-now.md](task-profile-now.md)): over the page's budget of 0.5 CPU s a task; most of it is "
            "the supports' photo-like views, rendered and embedded by both models.")


def looks_twice(rows: list[dict]) -> str:
    """A sentence on the models whose rows embed each picture with its mirror image, and a photo with its cut-out
    (the rows say so)."""
    twice = sorted({r["model"] for r in rows if r.get("flip_average")})
    blended = sorted({r["model"] for r in rows if r.get("photo_blend")})
    return ((f" The {' and '.join(twice)}'s rows embed each picture with its mirror image (below)." if twice else "")
            + (f" The {' and '.join(blended)}'s rows embed a photo with the sprite cut out of it too (below)."
               if blended else ""))


def main() -> None:
    rows = json.loads((ROOT / "docs/results/tracks.json").read_text())
    curve_file = json.loads((ROOT / "docs/finetune-curve.json").read_text())
    ablations = ROOT / "docs/robust-ablations.md"
    lines = ["# Robustness: pictures that are not sprites on white", "",
             "![What the renderer makes: novel sprites (top row), as the photo tracks see them (test "
             "backgrounds, rows 2-3), as training sees base sprites (train backgrounds, rows 4-5)](render-grid.png)",
             "", "`python -m pokedemo.bench render-grid` (the picture above); the renderer is `pokedemo/render.py`, "
             "the tracks `pokedemo/tracks.py`.", "",
             "## The tracks (novel species, 5-way, 600 episodes, mean +- 95% CI)", "",
             "`clean`: the sprites as prepared. `art`: supports from the animated sprites only, queries the "
             "dream-world art (1 query per class: a species has one art picture, two with its female art). "
             "`photo`: clean supports, photo-like queries (15 per class). `photo-both`: photo-like supports "
             "too. Photo-like pictures use the **test** backgrounds (two real photographs and texture streams "
             "that training never sees; training uses four other photographs and its own streams, model "
             "selection a fifth photograph and its own streams).", "",
             "Made by `python -m pokedemo.bench fewshot --model pixels --model random-student --model teacher "
             "--model student --model paper-student --track clean --track art --track photo --track photo-both "
             "--json docs/results/tracks.json --record`:", "", *tracks_table(rows), "",
             "The paper-student was trained before the robust recipe (clean sprites only) and is reported "
             "as it is. Every row uses the page's classifier: photo queries meet *photo-ready prototypes* "
             "(the supports averaged with 4 photo-like renderings of each, training backgrounds; "
             "`--support-views`, below)." + looks_twice(rows), "",
             *views_section(), *flip_section(), *blend_section(), *dtype_section(),
             "## Fine-tuning on the support set, per track (val species, val backgrounds)", "",
             f"Made by `{curve_file['command']}`:", "", *curve_table(curve_file["curve"]), "",
             *curves_section("finetune-copies-*.json", "One augmented view of each support a step, or two (val "
                             "species, val backgrounds)"),
             *curves_section("finetune-photo-copies-*.json", "Fine-tuning on photo-like renderings of the supports "
                             "(val species, photo track)")]
    if ablations.exists():
        lines += ["## How the student was made robust", "", "See [robust-ablations.md](robust-ablations.md).", ""]
    lines += ["## What the photo tracks still miss", "",
              "See [photo-gap.md](photo-gap.md): which backgrounds cost the most, what was tried against it, and "
              "the test-time variants the page does not use.", ""]
    (ROOT / "docs/robustness.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
