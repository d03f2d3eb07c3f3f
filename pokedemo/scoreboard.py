"""`python -m pokedemo.bench all`: every model side by side, measured in one run on this machine,
written to docs/benchmarks.md (+ .json), with the fine-tuning curve and the pruning sweep."""
from __future__ import annotations

import copy
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .checkpoint import base_mean, load_checkpoint
from .compress import latency_and_throughput, mflops, optimise_for_inference, prune_magnitude, size_on_disk
from .config import CHECKPOINT_DIR, EpisodeConfig
from .data.dataset import EpisodeSampler, SpriteDataset, split_species
from .fewshot import FineTuneConfig, classify, episode_accuracies, fine_tune, mean_ci95
from .models import build_model, count_parameters, embed_array, to_tensor
from .bench import fewshot_rows
from .tracks import (embed_views, photo_flags, render_pictures, support_views, track_sampler, track_views,
                     view_tensor)

FINE_TUNE_CURVE_STEPS = (0, 5, 10, 20, 40)


def fine_tuned_accuracies(model, supports: np.ndarray, queries: np.ndarray, sampler: EpisodeSampler,
                          config: FineTuneConfig, mean: torch.Tensor | None, desc: str,
                          views: np.ndarray | None = None, photo_queries: torch.Tensor | None = None
                          ) -> tuple[list[float], list[float]]:
    """Per episode: fine-tune a copy on the support set, then classify the queries. (accuracies, seconds)
    supports, queries: (N, S, S, 3) uint8 tables the sampler's indices point into (the same pictures, seen
    clean or photo-like). views: (K, N, S, S, 3) the supports rendered like phone photos, with
    photo_queries (N,) bool (which queries are photos): as the page does, they go to fine-tuning
    (`FineTuneConfig.photo_copies`) and make the photo-ready prototypes, embedded by the tuned copy."""
    episode = sampler.config
    support_labels = torch.arange(episode.n_way).repeat_interleave(episode.n_shot)
    query_labels = torch.arange(episode.n_way).repeat_interleave(episode.n_query)
    accuracies, seconds = [], []
    for support, query, _ in tqdm(sampler, total=episode.episodes, desc=desc, file=sys.stderr):
        started = time.perf_counter()
        support_images, query_images = to_tensor(supports[support]), to_tensor(queries[query])
        photos = photo_queries[query] if views is not None else None
        view_pictures = view_tensor(views[:, support]) if photos is not None and bool(photos.any()) else None
        tuned = fine_tune(model, support_images, support_labels, config,
                          support_views=view_pictures).model if config.steps else model
        with torch.inference_mode():
            support_embeddings, query_embeddings = tuned.embed(support_images), tuned.embed(query_images)
        view_embeddings = None if view_pictures is None else embed_views(tuned, view_pictures)
        probabilities = classify(support_embeddings, support_labels, query_embeddings, mean,
                                 support_views=view_embeddings, photo_queries=photos)
        seconds.append(time.perf_counter() - started)
        accuracies.append((probabilities.argmax(1) == query_labels).float().mean().item())
    return accuracies, seconds


def fine_tune_curve(student, card: dict, val: SpriteDataset, episodes: int, steps_list=FINE_TUNE_CURVE_STEPS,
                    fractions=(1.0, 0.5), tracks=("clean",), photo_copies: int = 0,
                    copies: int = FineTuneConfig().augment_copies) -> list[dict]:
    """Accuracy and seconds against steps (5-way 5-shot, the same episodes for every point of a track) on
    the VAL species, per robustness track (photo tracks rendered with the val pool): the curve picks the
    default, so the novel species and the test backgrounds stay out of it. Classified as the page does: the
    photo track's queries (photos of sprites) against photo-ready prototypes (`tracks.support_views`),
    which the fine-tuning also sees in `photo_copies` of its copies (`FineTuneConfig.photo_copies`). copies:
    augmented views of each support a step trains on (`FineTuneConfig.augment_copies`)."""
    from .bench import track_images

    data = track_images(val)
    tables = {"clean": val.images}
    curve = []
    for track in tracks:
        if track.startswith("photo") and "photo" not in tables:
            tables["photo"] = render_pictures(val.images, val.alpha, "val", 0)
        support_view, query_view = track_views(track)
        views = flags = None
        if (support_view, query_view) == ("clean", "photo"):   # sprites as supports, photos as queries
            views, flags = support_views(val.images, val.alpha), photo_flags(tables["photo"])
        for fraction in fractions:
            for steps in steps_list:
                if steps == 0 and fraction != fractions[0]:
                    continue
                sampler = track_sampler(data, track, 5, episodes)
                config = FineTuneConfig(steps=steps, train_fraction=fraction, photo_copies=photo_copies,
                                        augment_copies=copies)
                accuracies, seconds = fine_tuned_accuracies(
                    student, tables[support_view], tables[query_view], sampler, config, base_mean(card),
                    f"{track}: {steps} steps x {fraction}, {copies} copies", views, flags)
                accuracy, ci95 = mean_ci95(accuracies)
                curve.append({"track": track, "steps": steps, "train_fraction": fraction, "accuracy": accuracy,
                              "ci95": ci95, "seconds": float(np.median(seconds)), "episodes": episodes,
                              "augment_copies": copies,
                              "photo_ready": views is not None,
                              "photo_copies": photo_copies if views is not None else 0})
                print(json.dumps(curve[-1]), flush=True)
    return curve


def _row(model: str, n_shot: int, accuracies: list[float], episodes: int, seconds: float) -> dict:
    accuracy, ci95 = mean_ci95(accuracies)
    return {"model": model, "n_way": 5, "n_shot": n_shot, "n_query": 15, "episodes": episodes, "seed": 0,
            "accuracy": accuracy, "ci95": ci95, "seconds": round(seconds, 2)}


def run_scoreboard(args) -> dict:
    started_all = time.perf_counter()
    everything, splits = SpriteDataset.load(), split_species()
    novel, base, val = (everything.subset(splits[k]) for k in ("novel", "base", "val"))
    student, student_card = load_checkpoint(CHECKPOINT_DIR / "student.safetensors")
    teacher, teacher_card = load_checkpoint(CHECKPOINT_DIR / "teacher.safetensors")
    fewshot, models = [], []
    names = ["pixels", "random-student", "student", "teacher"]
    if (CHECKPOINT_DIR / "paper-student.safetensors").exists():
        names.insert(2, "paper-student")
    for name in names:
        fewshot += fewshot_rows(name, (1, 5), args.episodes, dataset=novel)

    # fine-tuned rows (fewer episodes: each one trains a model)
    default_steps = FineTuneConfig().steps
    fine_tune_seconds = {}
    for name, model, card, episodes in (("student", student, student_card, args.fine_tune_episodes),
                                        ("teacher", teacher, teacher_card, max(10, args.fine_tune_episodes // 10))):
        for n_shot in (1, 5):
            began = time.perf_counter()
            sampler = EpisodeSampler(novel.species, novel.source, EpisodeConfig(n_shot=n_shot, episodes=episodes))
            accuracies, seconds = fine_tuned_accuracies(
                model, novel.images, novel.images, sampler, FineTuneConfig(steps=default_steps),
                base_mean(card), f"{name}+fine-tune {n_shot}-shot")
            fewshot.append(_row(f"{name}+fine-tune", n_shot, accuracies, episodes, time.perf_counter() - began))
            if n_shot == 5:
                fine_tune_seconds[name] = float(np.median(seconds))

    curve_file = Path(args.out).parent / "finetune-curve.json"
    curve = json.loads(curve_file.read_text())["curve"] if curve_file.exists() else \
        fine_tune_curve(student, student_card, val, args.fine_tune_episodes)

    # magnitude pruning sweep
    pruning = []
    for sparsity in (0.0, 0.3, 0.5, 0.7, 0.9):
        pruned = prune_magnitude(student, sparsity)
        sampler = EpisodeSampler(novel.species, novel.source, EpisodeConfig(n_shot=5, episodes=args.episodes))
        accuracy, ci95 = mean_ci95(episode_accuracies(embed_array(pruned, novel.images), sampler,
                                                      base_mean(student_card)))
        pruning.append({"sparsity": sparsity, "accuracy": accuracy, "ci95": ci95})

    # speed: eager float models, and the same models rewritten for inference (teacher and student alike), one
    # pass of each network (timed on random pictures, which `images.is_photo` takes for photos); the page's
    # student looks twice (`flip_average`) and reads a photo's cut-out too (`photo_blend`), which the report says
    passes = {"student": 2 if student.flip_average else 1, "teacher": 2 if teacher.flip_average else 1}
    blended = [name for name, model in (("student", student), ("teacher", teacher)) if model.photo_blend is not None]
    student.flip_average = teacher.flip_average = False
    student.photo_blend = teacher.photo_blend = None
    # the page's teacher computes in its card's `inference_dtype` where this machine runs it faster: its own row;
    # the eager rows are float32, as trained
    served = copy.deepcopy(teacher) if teacher.inference_dtype is not None else None
    teacher.set_inference_dtype(None)
    student_fast, teacher_fast = optimise_for_inference(student), optimise_for_inference(teacher)
    speed_rows = [("random-student", build_model("student", **student_card["arguments"]), None),
                  ("student", student, None), ("student-fast", student_fast, student),
                  ("teacher", teacher, None),
                  ("teacher-fast", teacher_fast, teacher)]
    if served is not None:
        speed_rows.append((f"teacher-{served.inference_dtype_name}", served, teacher))
    if "paper-student" in names:
        speed_rows.insert(3, ("paper-student", load_checkpoint(CHECKPOINT_DIR / "paper-student.safetensors")[0], None))
    for name, measured, source in speed_rows:
        latency, throughput = latency_and_throughput(measured)
        float_model = source or measured
        models.append({"model": name, "parameters": count_parameters(float_model),
                       "bytes_fp32": None if source else size_on_disk(measured),
                       "bytes_fp16": None if source else size_on_disk(measured, torch.float16),
                       "mflops": mflops(float_model), "latency_ms_batch1": latency,
                       "images_per_s_batch64": throughput,
                       "fine_tune_seconds_5way5shot": None if source else fine_tune_seconds.get(name)})
    report = {"command": "python -m pokedemo.bench " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
              "machine": {"cpu": _cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                          "python": platform.python_version()},
              "seconds": round(time.perf_counter() - started_all, 1), "fewshot": fewshot, "models": models,
              "fine_tune_curve": curve, "pruning": pruning, "fine_tune_default_steps": default_steps,
              "passes_per_picture": passes, "photo_blend": blended}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    out.write_text(render_markdown(report))
    print(render_markdown(report))
    return report


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _passes_note(passes: dict, blended: list[str] = ()) -> list[str]:
    """A line on the models that embed a picture in more than one pass on the page (`flip_average`, and
    `photo_blend` for photos)."""
    twice = [name for name, count in passes.items() if count > 1]
    lines = ([f"The speed rows time one pass of each network. On the page and in the accuracy rows above, the "
              f"{' and the '.join(twice)} embed{'s' if len(twice) == 1 else ''} each picture together with its mirror "
              "image (`flip_average` in the card, chosen on the val species: docs/robustness.md): two passes, so half "
              "these images/s per picture."] if twice else [])
    lines += [f"A picture the page takes for a photo costs the {name} more: a pass of the segmenter and one more "
              "of its own over the sprite cut out of it (`photo_blend`, docs/photo-gap.md); sprites do not."
              for name in blended]
    return ["", " ".join(lines)] if lines else []


def render_markdown(report: dict) -> str:
    fmt = lambda v, f: "" if v is None else format(v, f)
    lines = ["# Benchmarks", "", f"Made by `{report['command']}` in {report['seconds']:.0f} s on "
             f"{report['machine']['cpu']}, {report['machine']['threads']} threads, torch {report['machine']['torch']}.",
             "", "Protocol: novel Gen I species, 5-way, 15 queries per class, seeded source-disjoint episodes, "
             "nearest prototype (SimpleShot centring on the base mean for learned models); mean +- 95% CI.", "",
             "| model | 1-shot (%) | 5-shot (%) | episodes |", "|---|---|---|---|"]
    by_model: dict[str, dict] = {}
    for row in report["fewshot"]:
        by_model.setdefault(row["model"], {})[row["n_shot"]] = row
    for name, shots in by_model.items():
        cells = [f"{100 * shots[k]['accuracy']:.2f} +- {100 * shots[k]['ci95']:.2f}" if k in shots else ""
                 for k in (1, 5)]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {next(iter(shots.values()))['episodes']} |")
    lines += ["", "| model | parameters | fp32 bytes | fp16 bytes | MFLOPs/image | ms/image (batch 1) "
              "| images/s (batch 64) | fine-tune s (5-way 5-shot, 75 queries) |", "|---|---|---|---|---|---|---|---|"]
    for m in report["models"]:
        lines.append(f"| {m['model']} | {m['parameters']:,} | {fmt(m['bytes_fp32'], ',')} | {fmt(m['bytes_fp16'], ',')} "
                     f"| {m['mflops']:.1f} | {m['latency_ms_batch1']:.2f} "
                     f"| {m['images_per_s_batch64']:.0f} | {fmt(m['fine_tune_seconds_5way5shot'], '.2f')} |")
    speed = {m["model"]: m["images_per_s_batch64"] for m in report["models"]}
    fastest = lambda family: max(v for k, v in speed.items() if k.startswith(family))  # student, -fast
    low = [k for k in speed if k.startswith("teacher-") and k != "teacher-fast"]
    lines += ["", "`-fast`: the same weights with BatchNorm folded into the convolutions and channels-last layout "
              "(`compress.optimise_for_inference`, embeddings equal to 1e-4). No int8 row: see `pokedemo/compress.py`."
              + "".join(f" `{k}`: the teacher as the page runs it on this machine, its test-time arithmetic in "
                        f"{k.removeprefix('teacher-')} (`inference_dtype` in its card, chosen on the val species: "
                        "docs/robustness.md)." for k in low), "",
              "Student / teacher throughput at batch 64, measured in this run:", "",
              f"- eager float, as trained: **{speed['student'] / speed['teacher']:.1f}x**",
              f"- both rewritten for inference (`-fast`): **{speed['student-fast'] / speed['teacher-fast']:.1f}x**",
              *(f"- eager student / the page's teacher (`{k}`): **{speed['student'] / speed[k]:.1f}x**" for k in low),
              f"- fastest student / fastest teacher: **{fastest('student') / fastest('teacher'):.1f}x**",
              *_passes_note(report.get("passes_per_picture", {}), report.get("photo_blend", [])),
              "",
              "## Fine-tuning curve (student, 5-way 5-shot, on the val species: it picks the default)", "",
              "| steps | trained fraction of parameters | prototypes | val accuracy (%) | seconds per episode "
              "(fine-tune + embed 100 images) |", "|---|---|---|---|---|"]
    lines += [f"| {c.get('track', 'clean')}: {c['steps']} | {c['train_fraction']} | "
              f"{'photo-ready' if c.get('photo_ready') else 'plain'} | {100 * c['accuracy']:.2f} +- "
              f"{100 * c['ci95']:.2f} | {c['seconds']:.2f} |" for c in report["fine_tune_curve"]]
    lines += ["", f"Default fine-tuning steps: {report['fine_tune_default_steps']}.", "",
              "## Magnitude pruning (student, 5-way 5-shot)", "", "| sparsity | accuracy (%) |", "|---|---|"]
    lines += [f"| {p['sparsity']:.0%} | {100 * p['accuracy']:.2f} +- {100 * p['ci95']:.2f} |" for p in report["pruning"]]
    return "\n".join(lines) + "\n"
