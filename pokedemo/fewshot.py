"""Few-shot classification by nearest prototype (ProtoNets, Snell et al. 2017) on embeddings,
episode evaluation, and support-set fine-tuning of a private copy of a model."""
from __future__ import annotations

import copy
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .augment import augment


TEMPERATURE = 0.1   # prototype logits: cosine similarity / TEMPERATURE


def compute_prototypes(support_embeddings: Tensor, support_labels: Tensor, n_way: int | None = None) -> Tensor:
    """Class means, re-normalised.

    support_embeddings: (n_support, embedding_dim)
    support_labels:     (n_support,) in 0..n_way-1
    returns:            (n_way, embedding_dim), L2-normalised
    """
    n_way = int(support_labels.max()) + 1 if n_way is None else n_way
    counts = torch.bincount(support_labels, minlength=n_way)
    if (counts == 0).any():
        raise ValueError(f"class {int(torch.nonzero(counts == 0)[0])} has no support image")
    sums = torch.zeros(n_way, support_embeddings.shape[1], dtype=support_embeddings.dtype)
    sums.index_add_(0, support_labels, support_embeddings)
    return F.normalize(sums / counts[:, None], dim=-1)


def centre(embeddings: Tensor, mean: Tensor | None) -> Tensor:
    """Subtract a mean then L2-normalise (SimpleShot, Wang et al. 2019). mean: (embedding_dim,) or None."""
    return embeddings if mean is None else F.normalize(embeddings - mean, dim=-1)


def prototype_logits(query_embeddings: Tensor, prototypes: Tensor, temperature: float = TEMPERATURE) -> Tensor:
    """Cosine similarity of each query to each class prototype, scaled.

    query_embeddings: (n_query, embedding_dim), L2-normalised
    prototypes:       (n_way, embedding_dim), L2-normalised
    returns:          (n_query, n_way) logits
    """
    return query_embeddings @ prototypes.T / temperature


def similarities(support_embeddings: Tensor, support_labels: Tensor, query_embeddings: Tensor,
                 mean: Tensor | None = None, support_views: Tensor | None = None,
                 photo_queries: Tensor | None = None) -> Tensor:
    """(n_query, n_way) cosine similarity of each query to each class prototype.

    Photo-ready prototypes: `support_views` (K, n_support, D) are the supports' embeddings seen other ways
    (rendered like phone photos with the *training* backgrounds, `tracks.support_views`); a query marked in
    `photo_queries` (n_query,) bool (a photo: `images.is_photo`) is compared with prototypes averaged over
    the supports and those views, any other query with the supports' alone. On the val species this
    lifts photo queries by 2-3 points and leaves the others as they were (docs/robustness.md).
    """
    supports, queries = centre(support_embeddings, mean), centre(query_embeddings, mean)
    cosines = queries @ compute_prototypes(supports, support_labels).T
    if support_views is not None and photo_queries is not None and bool(photo_queries.any()):
        views = torch.cat([supports] + [centre(v, mean) for v in support_views])
        ready = compute_prototypes(views, support_labels.repeat(len(support_views) + 1))
        cosines = torch.where(photo_queries[:, None], queries @ ready.T, cosines)
    return cosines


def classify(support_embeddings: Tensor, support_labels: Tensor, query_embeddings: Tensor,
             mean: Tensor | None = None, temperature: float = TEMPERATURE, support_views: Tensor | None = None,
             photo_queries: Tensor | None = None) -> Tensor:
    """(n_query, n_way) probabilities of each query for each class (see `similarities`)."""
    return (similarities(support_embeddings, support_labels, query_embeddings, mean, support_views, photo_queries)
            / temperature).softmax(dim=-1)


def reindex_labels(names: list[str]) -> tuple[list[str], np.ndarray]:
    """Map user class names to 0..n_way-1 in order of first appearance: (classes, labels)."""
    classes = list(dict.fromkeys(names))
    lookup = {name: index for index, name in enumerate(classes)}
    return classes, np.asarray([lookup[name] for name in names], dtype=np.int64)


def mean_ci95(values: list[float] | np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of its 95% normal confidence interval."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(1.96 * values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0


def episode_accuracies(embeddings: Tensor, sampler, mean: Tensor | None = None,
                       query_embeddings: Tensor | None = None, support_views: Tensor | None = None,
                       photo_queries: Tensor | None = None) -> list[float]:
    """Accuracy of nearest-prototype on each episode of `sampler`, from precomputed embeddings (N, D);
    queries from `query_embeddings` (N, D) when given (the same images seen another way, e.g. rendered);
    support_views (K, N, D) and photo_queries (N,) bool: photo-ready prototypes (`similarities`)."""
    query_embeddings = embeddings if query_embeddings is None else query_embeddings
    n_way, n_shot, n_query = sampler.config.n_way, sampler.config.n_shot, sampler.config.n_query
    support_labels = torch.arange(n_way).repeat_interleave(n_shot)
    query_labels = torch.arange(n_way).repeat_interleave(n_query)
    accuracies = []
    for support, query, _ in sampler:
        views = support_views[:, support] if support_views is not None else None
        photos = photo_queries[query] if photo_queries is not None else None
        probabilities = classify(embeddings[support], support_labels, query_embeddings[query], mean,
                                 support_views=views, photo_queries=photos)
        accuracies.append((probabilities.argmax(dim=1) == query_labels).float().mean().item())
    return accuracies


@dataclass
class FineTuneConfig:
    steps: int = 5               # docs/benchmarks.md's val curve: more steps did not beat 0 (within CI)
    lr: float = 1e-3
    weight_decay: float = 1e-2
    temperature: float = 0.1
    augment_copies: int = 1      # augmented views of each support image per step, against prototypes of one more:
                                 # on val, 1 and 2 gave the same answers (docs/results/finetune-copies-*.json), 1 costs
                                 # about 30% less a step
    train_fraction: float = 0.5  # train only the last layers holding this fraction of the parameters
    seed: int = 0
    max_seconds: float = 0.0     # stop after this long, whatever the steps (0 = no limit)
    photo_copies: int = 0        # of the augmented copies, how many (at most augment_copies) show each support as
                                 # one of its photo-like renderings when `fine_tune` is given them (`support_views`);
                                 # 0: on val it did not beat plain fine-tuning (docs/robustness.md)


def _last_parameters(model: torch.nn.Module, fraction: float) -> list[torch.nn.Parameter]:
    """The parameters of the last layers that together hold at least `fraction` of all embedding
    parameters (a teacher's base-species classifier plays no part in embeddings and is left out)."""
    parameters = [p for name, p in model.named_parameters() if not name.startswith("classifier")]
    total, kept, chosen = sum(p.numel() for p in parameters), 0, []
    for parameter in reversed(parameters):
        if kept >= fraction * total:
            break
        chosen.append(parameter)
        kept += parameter.numel()
    return chosen[::-1]


@dataclass
class FineTuneResult:
    model: torch.nn.Module
    losses: list[float]
    seconds: float
    cancelled: bool = False
    timed_out: bool = False
    snapshots: list[Tensor] = field(default_factory=list)
    snapshot_steps: list[int] = field(default_factory=list)   # the step after which each snapshot was taken


def fine_tune(model: torch.nn.Module, support_images: Tensor, support_labels: Tensor,
              config: FineTuneConfig = FineTuneConfig(), cancel: threading.Event | None = None,
              callback: Callable[[int, float], None] | None = None, snapshot_every: int = 0,
              snapshot_images: Tensor | None = None, first_snapshot: Tensor | None = None,
              support_views: Tensor | None = None) -> FineTuneResult:
    """Fine-tune a private deep copy of `model` on the support set; the shared model is untouched.

    Each step: augmented views of every support image; prototypes from one view set, logits of
    the others against them (the episodic ProtoNet loss on the support set alone); AdamW with
    cosine decay. BatchNorm statistics stay frozen (a 25-image set cannot estimate them).
    support_images: (n_support, 3, S, S) in [0, 1]; support_labels: (n_support,) in 0..n_way-1.
    snapshot_images: embedded every `snapshot_every` steps (and before step 0) into `snapshots`.
    first_snapshot: `model`'s embeddings of snapshot_images, when the caller has them (then not recomputed).
    support_views: (K, n_support, 3, S, S) the supports rendered like phone photos (`tracks.support_views`, the
    training backgrounds): the last `config.photo_copies` copies of each step (at most all the augmented ones)
    show each support as one of them,
    picked at random (colour changes only), against prototypes of the clean copy, so that photos of these
    species come near their classes' sprites.
    """
    if config.photo_copies < 0:
        raise ValueError(f"photo_copies must be 0 or more, got {config.photo_copies}")
    if support_views is not None and (support_views.dim() != 5 or support_views.shape[1:] != support_images.shape):
        raise ValueError("support_views must be (K, n_support, 3, S, S): K renderings of each support picture")
    if first_snapshot is not None and (snapshot_images is None or len(first_snapshot) != len(snapshot_images)):
        raise ValueError("first_snapshot must be the model's embeddings of snapshot_images, one row a picture")
    started = time.perf_counter()
    tuned = copy.deepcopy(model)
    tuned.eval()  # frozen BatchNorm statistics
    trainable = _last_parameters(tuned, config.train_fraction)
    for parameter in tuned.parameters():
        parameter.requires_grad_(False)
    for parameter in trainable:  # autograd then stops at the first trainable layer: early layers cost no backward
        parameter.requires_grad_(True)
    optimiser = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, config.steps))
    generator = torch.Generator().manual_seed(config.seed)
    n_way = int(support_labels.max()) + 1
    result = FineTuneResult(model=tuned, losses=[], seconds=0.0)

    def snapshot():
        if snapshot_every and snapshot_images is not None:
            if first_snapshot is not None and not result.losses:
                result.snapshots.append(first_snapshot.clone())
            else:
                with torch.inference_mode():
                    result.snapshots.append(tuned.embed(snapshot_images).detach().clone())
            result.snapshot_steps.append(len(result.losses))

    snapshot()
    for step in range(config.steps):
        if cancel is not None and cancel.is_set():
            result.cancelled = True
            break
        if config.max_seconds and time.perf_counter() - started > config.max_seconds:
            result.timed_out = True
            break
        views = augment(support_images.repeat(config.augment_copies + 1, 1, 1, 1), generator=generator)
        photos = min(config.photo_copies, config.augment_copies) if support_views is not None else 0
        if photos:
            count = len(support_images)
            pick = torch.randint(len(support_views), (photos, count), generator=generator)
            rendered = support_views[pick, torch.arange(count)].flatten(0, 1)
            views[len(views) - photos * count:] = augment(rendered, generator=generator, geometry=False, erase=False)
        embeddings = tuned.embed(views, test_time=False).view(config.augment_copies + 1, len(support_images), -1)
        prototypes = compute_prototypes(embeddings[0], support_labels, n_way)
        logits = prototype_logits(embeddings[1:].reshape(-1, embeddings.shape[-1]), prototypes, config.temperature)
        loss = F.cross_entropy(logits, support_labels.repeat(config.augment_copies))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        result.losses.append(loss.item())
        if callback is not None:
            callback(step + 1, loss.item())
        if snapshot_every and (step + 1) % snapshot_every == 0:
            snapshot()
    if snapshot_every and result.losses and len(result.losses) % snapshot_every:
        snapshot()  # the last snapshot is always the model that classifies (also after a cancel)
    for parameter in tuned.parameters():
        parameter.requires_grad_(False)
    result.seconds = time.perf_counter() - started
    return result
