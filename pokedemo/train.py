"""Training commands.

    python -m pokedemo.train teacher [--epochs N] [--resume] ...
    python -m pokedemo.train student --teacher checkpoints/teacher.safetensors [--alpha 0.1] ...

Class-balanced batches (P classes x K images), batch augmentations, AdamW with warm-up and cosine
decay, a checkpoint and a JSON line each epoch, model selection on the val species only.
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import Dataset, Sampler, default_collate
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from . import distributed
from .augment import MixStyle, augment
from .checkpoint import load_checkpoint, save_checkpoint
from .data.external import TrainData, image_files, load_train_data
from .data.stream import BalancedBatches, FolderImages, in_order, loader, unlabeled_batches
from .fewshot import mean_ci95
from .losses import attention_transfer_loss, distillation_loss, kd_kl, relation_loss, supcon_loss
from .models import NORMALISATION, Embedder, TrainingHeads, build_model, count_parameters, embed_array, pick_device
from .render import make_backgrounds, render
from .segment import rough_cut_outs
from .tracks import TRACKS, TrackImages, track_accuracies


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    classes_per_batch: int = 32      # P
    images_per_class: int = 4        # K
    lr: float = 2e-3
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    supcon_temperature: float = 0.1
    ce_weight: float = 1.0           # teacher: cross-entropy on the base-species classifier
    alpha: float = 0.1               # student: weight of the KL term (source report: 0.1)
    temperature: float = 4.0         # student: KD temperature
    beta: float = 1.0                # student: embedding-level term; 0 = the source report's loss
    colour: bool = True              # colour augmentation (hue, saturation, ...)
    render_p: float = 0.0            # share of training views rendered photo-like (`render`, train pool)
    leaves: bool = False             # dead-leaves backgrounds as a fifth kind in the training bank
    more_photos: bool = False        # photo crops from scikit-image's pictures too (render.EXTRA_TRAIN_PHOTOS)
    recolour_photos: bool = False    # the photo crops in other colours (`render.make_backgrounds(recolour=True)`)
    cut_p: float = 0.0               # share of the photo-like views then cut out roughly, as the photo blend's
                                     # segmenter would (`segment.rough_cut_outs`)
    mixstyle: float = 0.0            # probability of MixStyle per batch and early stage (`augment.MixStyle`)
    teacher_view: str = "clean"      # student: teacher targets on the clean image (once) or on the "same" view
    teacher_mirror: bool = False     # student: teacher targets from the picture and its mirror image, averaged
    relation: float = 0.0            # student: weight of the relational term (`losses.relation_loss`)
    attention: float = 0.0           # student: weight of attention transfer from the teacher's maps of the same
                                     # view (`losses.attention_transfer_loss`); needs teacher_view "same"
    val_episodes: int = 300
    steps_per_epoch: int = 0         # 0 = one pass over the training images
    seed: int = 0


def learning_rate(config: TrainConfig, step: int, total: int, per_epoch: int) -> float:
    warmup = config.warmup_epochs * per_epoch
    if step < warmup:
        return config.lr * (step + 1) / warmup
    return config.lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def teacher_targets(teacher, pictures: Tensor, mirror: bool = False) -> tuple[Tensor, Tensor]:
    """The teacher's (logits (B, C), L2-normalised embeddings (B, D)) of pictures already on its device, as
    float. mirror: of the picture and its mirror image together, as the teacher looking twice would see
    them (`Embedder.embed_pictures`): the mean of the logits and the normalised mean of the embeddings."""
    looks = torch.cat([pictures, pictures.flip(-1)]) if mirror else pictures
    features = teacher(looks).float()
    logits, embeddings = teacher.classifier(features).float(), F.normalize(features, dim=-1)
    if mirror:
        count = len(pictures)
        logits = (logits[:count] + logits[count:]) / 2
        embeddings = F.normalize(embeddings[:count] + embeddings[count:], dim=-1)
    return logits, embeddings


def validate(model, data: TrainData, config: TrainConfig, cache: dict) -> dict[str, float]:
    """5-way nearest-prototype accuracy on the validation images, per robustness track (`tracks`, with
    the **val** pool of backgrounds), 5-shot (tiny data falls back to 1-shot 1-query), and their mean,
    which selects the model. cache: kept between epochs (the rendered val pictures)."""
    images = TrackImages(data.val_images, data.val_alpha, data.val_labels, data.val_sources, data.val_art)
    embed = lambda pictures: embed_array(model, pictures)
    epoch_cache = {k: v for k, v in cache.items() if k == "photo_images"}
    scores = {}
    for track in TRACKS if data.val_art is not None else ("clean", "photo", "photo-both"):
        for n_shot, n_query in ((5, 15), (1, 1)):
            try:
                accuracies = track_accuracies(embed, images, track, n_shot, config.val_episodes, config.seed,
                                              pool="val", cache=epoch_cache, n_query=n_query)
            except ValueError:
                continue
            scores[track] = mean_ci95(accuracies)[0]
            break
    if not scores:
        raise ValueError(f"too few validation images ({len(data.val_images)}) for any few-shot episode")
    cache.update({k: v for k, v in epoch_cache.items() if k == "photo_images"})
    scores["mean"] = float(np.mean(list(scores.values())))
    return scores


def training_views(images: Tensor, alpha: Tensor, config: TrainConfig, backgrounds: Tensor | None,
                   generator: torch.Generator) -> Tensor:
    """Augmented views of a batch: images (B, 3, S, S) over white, alpha (B, 1, S, S) in [0, 1].
    A share `render_p` is rendered photo-like: the sprite's colours are augmented, then it is posed on a
    training background and photographed (`render`); the others get the sprite augmentations on white. A share
    `cut_p` of the photo-like views is then cut out again with a roughened mask (`segment.rough_cut_outs`)."""
    views = augment(images, generator=generator, colour=config.colour)
    if config.render_p <= 0 or backgrounds is None:
        return views
    chosen = torch.rand(len(images), generator=generator) < config.render_p
    if chosen.any():
        masks = alpha[chosen]
        sprites = augment(images[chosen], generator=generator, colour=config.colour, geometry=False, erase=False)
        sprites = sprites * masks + (1 - masks)  # colour changes stay on the sprite: white stays white
        photos, where = render(sprites, masks, backgrounds, generator, with_mask=True)
        if config.cut_p > 0:                     # render computes the mask either way: it costs nothing more
            again = torch.rand(len(photos), generator=generator) < config.cut_p
            if again.any():
                photos[again] = rough_cut_outs(photos[again], where[again], generator)[0]
        views[chosen] = photos
    return views


def epoch_backgrounds(epoch: int, config: TrainConfig) -> Tensor:
    """A fresh bank of training backgrounds each epoch (the train pool: never the val or test ones)."""
    return make_backgrounds("train", 1024, 80, seed=epoch, leaves=config.leaves, extra_photos=config.more_photos,
                            recolour=config.recolour_photos)


class StepViews(Dataset):
    """The training views made where the pictures are read: in the DataLoader workers (`--workers N`), so
    augmenting and photo-like rendering, which run on the CPU, keep pace with a GPU. Each step's views come
    from their own seed (seed, epoch, step, rank), so they are the same for any number of workers. The batch
    sampler must be wrapped in `NumberedBatches`; returns (views (B, 3, S, S) float, alpha, labels, index)."""

    def __init__(self, dataset: Dataset, config: TrainConfig, rank: int = 0):
        self.dataset, self.config, self.rank = dataset, config, rank
        self._bank: tuple[int, Tensor] | None = None      # (epoch, its backgrounds), per worker process

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitems__(self, keys: list[tuple[int, int, int]]):
        """One step's keys -> the step's batch, already collated (load it with `collate=_as_is`)."""
        epoch, step = keys[0][0], keys[0][1]
        pictures, alpha, labels, index = default_collate([self.dataset[i] for _, _, i in keys])
        if self.config.render_p > 0 and (self._bank is None or self._bank[0] != epoch):
            self._bank = (epoch, epoch_backgrounds(epoch, self.config))
        generator = torch.Generator().manual_seed(((self.config.seed * 1000 + epoch) * 100_003 + step) * 1024
                                                  + self.rank)
        views = training_views(pictures.float().div_(255), alpha.float().div_(255), self.config,
                               self._bank[1] if self._bank else None, generator)
        return views, alpha, labels, index


class NumberedBatches(Sampler):
    """A batch sampler's batches as (epoch, step, index) keys, for `StepViews`."""

    def __init__(self, batches: BalancedBatches):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for step, batch in enumerate(self.batches):
            yield [(self.batches.epoch, step, i) for i in batch]


def _as_is(batch):
    return batch


def _state_tensors(model, heads, optimiser) -> dict:
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    state.update({f"heads.{k}": v for k, v in heads.state_dict().items()})
    for index, values in optimiser.state_dict()["state"].items():
        state.update({f"optim.{index}.{k}": torch.as_tensor(v) for k, v in values.items()})
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def _restore(state: dict, model, heads, optimiser) -> None:
    model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
    heads.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("heads.")})
    optim_state = optimiser.state_dict()
    per_param: dict[int, dict] = {}
    for key, value in state.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            per_param.setdefault(int(index), {})[name] = value
    optim_state["state"] = per_param
    optimiser.load_state_dict(optim_state)


class MapTap:
    """The output of a module's last forward (a forward hook): the feature maps attention transfer compares."""

    def __init__(self, module: nn.Module):
        self.maps: Tensor | None = None
        self.handle = module.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, inputs, output: Tensor) -> None:
        self.maps = output

    def remove(self) -> None:
        self.handle.remove()
        self.maps = None


class TrainStep(nn.Module):
    """The model and its training heads behind one forward, so DistributedDataParallel keeps all of them in
    step. returns: features (B, D), projected (B, 1, P) L2-normalised, logits (B, n_classes), to_teacher or None."""

    def __init__(self, model: nn.Module, heads: TrainingHeads, kind: str):
        super().__init__()
        self.model, self.heads, self.kind = model, heads, kind

    def forward(self, batch: Tensor):
        features = self.model(batch)
        projected = F.normalize(self.heads.projection(features), dim=-1)[:, None]
        logits = self.model.classifier(features) if self.kind == "teacher" else self.heads.classifier(features)
        to_teacher = self.heads.to_teacher(features) if self.heads.to_teacher is not None else None
        return features, projected, logits, to_teacher


def train(kind: str, args: argparse.Namespace, config: TrainConfig) -> Path | None:
    """Train; returns the checkpoint written (None on the ranks other than 0 under torchrun)."""
    torch.manual_seed(config.seed)
    device = distributed.local_device(pick_device(args.device))
    ranks = distributed.setup(device)
    try:
        return _train(kind, args, config, device, ranks)
    finally:
        distributed.shutdown(ranks)


def _train(kind: str, args: argparse.Namespace, config: TrainConfig, device: torch.device,
           ranks: distributed.Ranks) -> Path | None:
    data = load_train_data(args.data, args.image_size)
    run_dir = Path(args.run_dir or f"runs/{kind}")
    run_dir.mkdir(parents=True, exist_ok=True)
    n_classes = len(data.classes)
    cuda = device.type == "cuda"
    amp = args.amp == "on" or (args.amp == "auto" and cuda)         # bf16 autocast: on CUDA unless --amp off
    if args.soup:  # train no more: the average of runs that started from one model; no heads, no teacher of its own
        if not ranks.main:
            return None
        model, history = make_soup(args.soup, "teacher" if kind == "teacher" else args.architecture, data, config)
        return finish(kind, model, nn.Module(), data, args, config, model.arguments, history, None)
    teacher = teacher_card = None
    if kind == "teacher":
        model = build_model("teacher", **json.loads(args.arguments or "{}") | {"n_classes": n_classes}).to(device)
        arguments = model.arguments
        heads = TrainingHeads(model.embedding_dim, 0).to(device)
    else:
        # the network alone (its targets come from `forward`, in float32): no test-time extras
        teacher, teacher_card = load_checkpoint(args.teacher, device=str(device), extras=False)
        if teacher_card["arguments"].get("n_classes") != n_classes:
            raise ValueError(f"the teacher knows {teacher_card['arguments'].get('n_classes')} classes, "
                             f"the data has {n_classes}: train both on the same --data")
        model = build_model(args.architecture, **json.loads(args.arguments or "{}")).to(device)
        arguments = model.arguments
        heads = TrainingHeads(model.embedding_dim, n_classes, teacher_dim=teacher.embedding_dim if config.beta else 0)
        heads = heads.to(device)
    if args.init:  # start from trained weights (e.g. the clean teacher), or grow a narrower model's
        initial, _ = load_checkpoint(args.init, extras=False)
        grow_into(model, initial.state_dict())
    if args.finish:  # a run stopped before its last epoch (e.g. a time limit): write what it selected so far
        if not ranks.main:
            return None
        best_file, history_file = run_dir / "best.safetensors", run_dir / "state.json"
        if not best_file.exists() or not history_file.exists():
            raise FileNotFoundError(f"--finish needs {best_file} and {history_file} from an earlier run")
        history = json.loads(history_file.read_text())
        _same_arguments(history, arguments, run_dir)
        model.load_state_dict(load_file(str(best_file)))
        print(f"finishing {kind} from {run_dir}: stopped after epoch {history['epoch']} of {config.epochs}, "
              f"selected epoch {history.get('best_epoch')}")
        return finish(kind, model.cpu(), heads, data, args, config, arguments, {"world_size": 1} | history,
                      teacher_card)
    if cuda:  # channels-last: the layout CUDA's convolution kernels prefer
        model.to(memory_format=torch.channels_last)
        if teacher is not None:
            teacher.to(memory_format=torch.channels_last)
    mixstyle = MixStyle(model, config.mixstyle) if config.mixstyle > 0 else None
    taps = None
    if config.attention:   # `main` refused it without --teacher-view same
        taps = {"student": MapTap(model.attention_layer()), "teacher": MapTap(teacher.attention_layer())}
    engine = distributed.wrap(TrainStep(model, heads, kind), ranks, device)
    if args.compile:
        engine = torch.compile(engine)
    optimiser = torch.optim.AdamW(list(model.parameters()) + list(heads.parameters()),
                                  lr=config.lr, weight_decay=config.weight_decay)
    train_set = data.dataset()                # the arrays in memory, or the files of a folder read by workers
    n_images = len(train_set)
    per_epoch = config.steps_per_epoch or max(1, n_images // (config.classes_per_batch * config.images_per_class))
    batches = BalancedBatches(data.labels, config.classes_per_batch, config.images_per_class, per_epoch, config.seed,
                              ranks.rank, ranks.world_size)
    views_in_workers = args.workers > 0
    if views_in_workers:   # augment and render in the workers too (`StepViews`)
        steps = loader(StepViews(train_set, config, ranks.rank), NumberedBatches(batches), args.workers,
                       pin_memory=cuda, collate=_as_is)
    else:                  # in this process, from one generator per epoch (the shipped checkpoints' recipe)
        steps = loader(train_set, batches, 0, pin_memory=cuda)
    unlabeled_set = FolderImages(image_files(Path(args.unlabeled)), None, data.image_size) if args.unlabeled else None
    teacher_logits = teacher_embeddings = None
    if teacher is not None:
        # Teacher targets on clean images, computed once (by rank 0, then shared): the student then trains at
        # its own speed. Unlabeled images follow the training ones.
        n_all = n_images + (len(unlabeled_set) if unlabeled_set is not None else 0)
        teacher_logits, teacher_embeddings = torch.empty(n_all, n_classes), torch.empty(n_all, teacher.embedding_dim)
        if ranks.main:
            logits, embeddings = [], []
            with torch.inference_mode():
                for dataset in [train_set] + ([unlabeled_set] if unlabeled_set is not None else []):
                    for pictures, *_ in tqdm(in_order(dataset, 256, args.workers), desc="teacher targets",
                                             unit="batch", file=sys.stderr):
                        batch_logits, batch_embeddings = teacher_targets(
                            teacher, _to_device(pictures.float().div_(255), device), config.teacher_mirror)
                        logits.append(batch_logits.cpu())
                        embeddings.append(batch_embeddings.cpu())
            teacher_logits, teacher_embeddings = torch.cat(logits), torch.cat(embeddings)
        teacher_logits = distributed.broadcast_from_main(teacher_logits.contiguous(), ranks)
        teacher_embeddings = distributed.broadcast_from_main(teacher_embeddings.contiguous(), ranks)
    unlabeled_size = max(1, config.classes_per_batch * config.images_per_class // ranks.world_size // 2)
    total = per_epoch * config.epochs
    state_file, history_file, log_file = run_dir / "last.safetensors", run_dir / "state.json", run_dir / "log.jsonl"
    history = {"epoch": 0, "best": -1.0, "seconds": 0.0, "arguments": arguments}
    if args.resume and state_file.exists():
        history = json.loads(history_file.read_text())
        _same_arguments(history, arguments, run_dir)
        _restore(load_file(str(state_file)), model, heads, optimiser)
        if ranks.main:
            print(f"resumed {kind} from {state_file} after epoch {history['epoch']}")
    best_file = run_dir / "best.safetensors"
    val_cache: dict = {}
    for epoch in range(history["epoch"], config.epochs):
        started = time.perf_counter()
        batches.set_epoch(epoch)   # the same global batches on every rank
        # unlabeled batches seeded by epoch too, so that a resumed run draws what an uninterrupted one would
        unlabeled = unlabeled_batches(unlabeled_set, unlabeled_size, config.seed * 1000 + epoch, ranks.rank,
                                      ranks.world_size, args.workers, cuda) if unlabeled_set is not None else None
        generator = torch.Generator().manual_seed(config.seed * 1000 + epoch + 7919 * ranks.rank)  # own views
        if mixstyle is not None:
            mixstyle.generator.manual_seed(config.seed * 1000 + epoch + 7919 * ranks.rank + 1)
        backgrounds = epoch_backgrounds(epoch, config) if config.render_p > 0 and not views_in_workers else None
        model.train(), heads.train()
        losses = []
        bar = tqdm(steps, desc=f"{kind} epoch {epoch + 1}/{config.epochs}", unit="step", file=sys.stderr,
                   disable=not ranks.main)
        for step, (pictures, alpha, batch_labels, index) in enumerate(bar):
            for group in optimiser.param_groups:
                group["lr"] = learning_rate(config, epoch * per_epoch + step, total, per_epoch)
            views = pictures if views_in_workers else training_views(
                pictures.float().div_(255), alpha.float().div_(255), config, backgrounds, generator)
            batch = _to_device(views, device)
            batch_labels = batch_labels.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                features, projected, logits, to_teacher = engine(batch)          # (B, D), (B, 1, P), (B, C)
                if kind == "teacher":
                    loss = supcon_loss(projected.float(), batch_labels, config.supcon_temperature) + \
                        config.ce_weight * F.cross_entropy(logits.float(), batch_labels, label_smoothing=0.1)
                else:
                    target_logits, target_embeddings = teacher_logits[index].to(device), teacher_embeddings[index].to(device)
                    if config.teacher_view == "same":  # the teacher sees the student's (possibly corrupted) view
                        with torch.inference_mode():
                            target_logits, target_embeddings = teacher_targets(teacher, batch, config.teacher_mirror)
                    loss = distillation_loss(logits.float(), target_logits, projected.float(), batch_labels,
                                             config.alpha, config.temperature, config.supcon_temperature,
                                             None if to_teacher is None else to_teacher.float(), target_embeddings,
                                             config.beta)
                    if config.relation:
                        loss = loss + config.relation * relation_loss(features.float(), target_embeddings)
                    if taps is not None:   # both maps are of this batch: the student's step, then the teacher's
                        # (with --teacher-mirror the teacher saw the batch, then its mirror image: the first half)
                        loss = loss + config.attention * attention_transfer_loss(
                            taps["student"].maps, taps["teacher"].maps[:len(batch)])
                    if unlabeled is not None:  # unlabeled images learn from the teacher's outputs alone
                        u_pictures, _, _, u_index = next(unlabeled)
                        u_features = model(_to_device(augment(u_pictures.float().div_(255), generator=generator),
                                                      device))
                        loss = loss + config.alpha * kd_kl(heads.classifier(u_features).float(),
                                                           teacher_logits[u_index + n_images].to(device),
                                                           config.temperature)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        train_seconds = time.perf_counter() - started
        if not ranks.main:  # rank 0 alone validates and writes; the others wait for the next epoch
            distributed.barrier(ranks)
            continue
        scores = validate(model, data, config, val_cache)
        accuracy = scores["mean"]
        history["seconds"] += time.perf_counter() - started
        history["epoch"] = epoch + 1
        record = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_5shot": accuracy,
                  "val_tracks": {k: round(v, 4) for k, v in scores.items()},
                  # training steps only (no validation), all processes together
                  "train_images_per_s": round(per_epoch * config.classes_per_batch * config.images_per_class
                                              / train_seconds, 1),
                  "seconds": history["seconds"], "lr": optimiser.param_groups[0]["lr"]}
        if accuracy > history["best"]:
            history["best"], history["best_epoch"] = accuracy, epoch + 1
            history["best_tracks"] = record["val_tracks"]
            save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(best_file))
        save_file(_state_tensors(model, heads, optimiser), str(state_file))
        history_file.write_text(json.dumps(history))
        with open(log_file, "a") as log:
            log.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)
        distributed.barrier(ranks)
    if mixstyle is not None:
        mixstyle.remove()
    for tap in (taps or {}).values():
        tap.remove()
    agree = distributed.weights_agree(model, ranks)
    if not ranks.main:
        return None
    if ranks.world_size > 1:
        print(f"all {ranks.world_size} processes hold {'identical' if agree else 'DIFFERENT'} weights", flush=True)
        if not agree:
            raise RuntimeError("the processes' weights differ: data-parallel training went out of step")
    model.load_state_dict(load_file(str(best_file)))
    history["world_size"] = ranks.world_size
    return finish(kind, model.cpu().to(memory_format=torch.contiguous_format), heads, data, args, config, arguments,
                  history, teacher_card)


def _same_arguments(history: dict, arguments: dict, run_dir: Path) -> None:
    """--resume and --finish go on with the network the run trained: the max-pool and the strides hold no
    weights, so another network's `--arguments` would load its state without a complaint. (A run folder from
    before the arguments were kept in its state.json is not checked.)"""
    trained = history.get("arguments", arguments)   # both JSON's types: the models keep their arguments as lists
    if trained != arguments:
        raise ValueError(f"{run_dir} trained a network with arguments {trained}, this command builds {arguments}: "
                         "give the run's --arguments")


NEW_CHANNEL_SCALE = 1e-2   # a grown BatchNorm channel's weight: near silent, yet its gradients flow through the ReLU
FRESH_LAYERS = ("attention",)   # layers a model may have that its --init lacks: they start as models.py makes them


def grow_into(model: torch.nn.Module, state: dict[str, Tensor]) -> None:
    """Load `state` into `model`, whose layers are as wide or wider (the same layers, more channels: Net2Net's
    growth, Chen et al. 2016). Each tensor fills the leading slice of the model's; the rest keep their fresh
    initialisation, except a grown BatchNorm channel, which starts at weight NEW_CHANNEL_SCALE and bias 0, so
    its output after the ReLU is near 0 and the grown model embeds almost as the narrower one did. Layers the
    model has and `state` lacks are refused, except FRESH_LAYERS (the student's attention pool, which starts
    as the global average): they keep their fresh initialisation."""
    own = model.state_dict()
    extra = sorted(state.keys() - own.keys())
    lacking = sorted(name for name in own.keys() - state.keys() if name.split(".", 1)[0] not in FRESH_LAYERS)
    if extra:
        raise ValueError(f"--init has other layers than this model: {extra[:5]}")
    if lacking:
        raise ValueError(f"--init lacks layers of this model: {lacking[:5]}")
    norms = {name for name, module in model.named_modules() if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d))}
    grown = {name: own[name] for name in own.keys() - state.keys()}
    for name, tensor in state.items():
        target = own[name].clone()
        if tensor.dim() != target.dim() or any(a > b for a, b in zip(tensor.shape, target.shape)):
            raise ValueError(f"--init's {name} {tuple(tensor.shape)} does not fit this model's {tuple(target.shape)}")
        layer, kind = name.rsplit(".", 1)
        if layer in norms and kind in ("weight", "bias"):
            target.fill_(NEW_CHANNEL_SCALE if kind == "weight" else 0.0)   # what is not overwritten below is new
        target[tuple(slice(0, n) for n in tensor.shape)] = tensor.to(target.dtype)
        grown[name] = target
    model.load_state_dict(grown)


def make_soup(paths: list[str], architecture: str, data: TrainData, config: TrainConfig) -> tuple[Embedder, dict]:
    """A uniform model soup (Wortsman et al. 2022): the mean of the weights and BatchNorm statistics of these
    checkpoints (`torch.optim.swa_utils.AveragedModel`), which must share one architecture and its arguments
    and should be runs fine-tuned from one starting point (averaging unrelated runs makes noise). It is
    scored on the val tracks, as training selects. Returns the model and the history `finish` writes into
    the card, with what each ingredient was and cost."""
    if len(paths) < 2:
        raise ValueError("--soup averages two or more checkpoints")
    averaged, ingredients, first = None, [], None
    for path in paths:
        ingredient, card = load_checkpoint(path, extras=False)   # scored as training scores: the network alone
        shape = (card["architecture"], card.get("arguments", {}))
        first = first or shape
        if card["architecture"] != architecture or shape != first:
            raise ValueError(f"{path} is a {card['architecture']} with {card.get('arguments')}: a soup averages "
                             f"checkpoints of one architecture ({architecture}, {first[1]})")
        if card.get("species") != data.classes:
            raise ValueError(f"{path} was trained on other species than --data has: a soup is scored and "
                             "centred on the data its ingredients learned")
        averaged = averaged or AveragedModel(ingredient, use_buffers=True)
        averaged.update_parameters(ingredient)
        ingredients.append({"path": str(path), "command": card.get("command"), "init": card.get("init"),
                            "teacher": card.get("teacher"),
                            "training_seconds": card.get("training_seconds"), "epochs": card.get("epochs"),
                            "val_tracks": card.get("val_tracks")})
    model = averaged.module.eval()
    with torch.inference_mode():
        tracks = validate(model, data, config, {})
    print(f"soup of {len(paths)}: val " + ", ".join(f"{k} {v:.4f}" for k, v in tracks.items()))
    return model, {"seconds": sum(i["training_seconds"] or 0 for i in ingredients), "epoch": None,
                   "best": tracks["mean"], "best_tracks": tracks, "soup": ingredients}


def _to_device(batch: Tensor, device: torch.device) -> Tensor:
    """A batch on the training device: pinned and copied without waiting, channels-last, on CUDA."""
    if device.type != "cuda":
        return batch
    return batch.pin_memory().to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)


def finish(kind, model, heads, data: TrainData, args, config: TrainConfig, arguments: dict, history: dict,
           teacher_card: dict | None) -> Path:
    """Write the selected model to --out with its card (base mean embedding for SimpleShot centring)."""
    model.eval()
    with torch.inference_mode():
        base_mean = torch.cat([model.embed(pictures.float().div_(255))
                               for pictures, *_ in in_order(data.dataset(), 256, args.workers)]).mean(dim=0)
    card = {
        "architecture": "teacher" if kind == "teacher" else args.architecture, "arguments": arguments,
        "input_size": data.image_size, "normalisation": NORMALISATION, "embedding_dim": model.embedding_dim,
        "data": args.data, "species": data.classes, "dataset_sha512": data.data_hash,
        "command": "python -m pokedemo.train " + " ".join(shlex.quote(a) for a in args.argv),
        "training_seconds": round(history["seconds"], 1), "epochs": history["epoch"],
        "selected_epoch": history.get("best_epoch"), "val_5shot": history["best"],
        "val_tracks": history.get("best_tracks"), "init": args.init, "world_size": history.get("world_size", 1),
        "parameters": count_parameters(model), "training_head_parameters": count_parameters(heads),
        "config": asdict(config), "teacher": teacher_card and teacher_card.get("command"),
        "base_mean": [round(x, 6) for x in base_mean.tolist()], "scores": {},
    }
    if "soup" in history:
        card["soup"] = history["soup"]
    out = Path(args.out or f"checkpoints/{kind}.safetensors")
    save_checkpoint(model, out, card, half=(kind == "teacher" and not args.fp32))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {card['parameters']:,} parameters); "
          f"val 5-shot {history['best']:.3f} at epoch {history.get('best_epoch')}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pokedemo.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["teacher", "student"])
    parser.add_argument("--teacher", default="checkpoints/teacher.safetensors", help="student: the teacher checkpoint")
    parser.add_argument("--architecture", default="student", choices=["student", "paper-student"])
    parser.add_argument("--arguments", help='the architecture\'s arguments as JSON, e.g. \'{"patch": 4}\' (student), '
                        '\'{"stem_pool": false}\' (teacher; its classes come from --data)')
    parser.add_argument("--data", default="sprites", help="sprites | cifar10 | folder:PATH")
    parser.add_argument("--unlabeled", help="student: a folder of unlabeled images to distil on as well")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes reading the images and making the "
                        "training views (0: in this process, one random stream per epoch)")
    parser.add_argument("--amp", choices=["auto", "on", "off"], default="auto",
                        help="bf16 autocast: auto = on CUDA only")
    parser.add_argument("--compile", action="store_true", help="torch.compile the training step")
    parser.add_argument("--run-dir", help="per-epoch state and log (default runs/KIND)")
    parser.add_argument("--out", help="default checkpoints/KIND.safetensors")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.safetensors")
    parser.add_argument("--finish", action="store_true",
                        help="train no more: write the checkpoint and card of RUN_DIR's selected epoch so far "
                             "(a run stopped before its last epoch, e.g. by a time limit)")
    parser.add_argument("--init", help="start from this checkpoint's weights (the same architecture, or a narrower "
                        "one grown into it: `grow_into`)")
    parser.add_argument("--soup", nargs="+", metavar="CHECKPOINT",
                        help="train no more: write the average of these checkpoints (runs of this architecture "
                             "fine-tuned from one model: `make_soup`), scored on val")
    parser.add_argument("--fp32", action="store_true", help="teacher: save float32 (default float16)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    for field in fields(TrainConfig):
        if field.type in ("bool", bool) and field.default:
            parser.add_argument("--no-" + field.name.replace("_", "-"), dest=field.name, action="store_false")
        elif field.type in ("bool", bool):
            parser.add_argument("--" + field.name.replace("_", "-"), dest=field.name, action="store_true")
        else:
            parser.add_argument("--" + field.name.replace("_", "-"), type=type(field.default), default=field.default)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)   # the card's command
    if args.threads:
        torch.set_num_threads(args.threads)
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    if config.teacher_view not in ("clean", "same"):
        print(f"error: --teacher-view must be clean or same, got '{config.teacher_view}'", file=sys.stderr)
        return 2
    if config.attention < 0 or (config.attention and (args.kind != "student" or config.teacher_view != "same")):
        print("error: --attention is a weight of 0 or more, for a student with --teacher-view same (the teacher's "
              "maps of the student's own view)", file=sys.stderr)
        return 2
    try:
        train(args.kind, args, config)
    except (ValueError, FileNotFoundError) as error:  # json.JSONDecodeError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
