"""pokedemo.fewshot: prototypes, logits, label re-indexing, episodes, support fine-tuning."""
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pokedemo.config import EpisodeConfig
from pokedemo.data import EpisodeSampler
from pokedemo.fewshot import (FineTuneConfig, classify, compute_prototypes, episode_accuracies, fine_tune,
                              mean_ci95, prototype_logits, reindex_labels)
from pokedemo.models import build_model


def test_prototypes_are_normalised_class_means_when_classes_are_unbalanced():
    embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, 0.0]])
    labels = torch.tensor([0, 0, 0, 1])
    prototypes = compute_prototypes(embeddings, labels)
    assert torch.allclose(prototypes[0], F.normalize(torch.tensor([2 / 3, 2 / 3]), dim=0))
    assert torch.allclose(prototypes[1], torch.tensor([1.0, 0.0]))


def test_an_empty_class_is_an_error():
    with pytest.raises(ValueError, match="class 1 has no support image"):
        compute_prototypes(torch.randn(3, 2), torch.tensor([0, 0, 2]))


def test_prototype_logits_are_scaled_cosines():
    queries = F.normalize(torch.randn(6, 4), dim=-1)
    prototypes = F.normalize(torch.randn(3, 4), dim=-1)
    assert torch.allclose(prototype_logits(queries, prototypes, 0.5), queries @ prototypes.T * 2)


def test_labels_are_reindexed_from_any_names_in_order_of_appearance():
    classes, labels = reindex_labels(["pikachu", "eevee", "pikachu", "7"])
    assert classes == ["pikachu", "eevee", "7"] and labels.tolist() == [0, 1, 0, 2]


def test_nearest_prototype_is_perfect_on_well_separated_toy_data():
    generator = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.randn(10, 32, generator=generator), dim=-1) * 10
    species = np.repeat(np.arange(10), 40)
    source = np.repeat(np.arange(50), 8)
    embeddings = F.normalize(centres[species] + torch.randn(400, 32, generator=generator), dim=-1)
    sampler = EpisodeSampler(species, source, EpisodeConfig(n_shot=1, episodes=20))
    assert episode_accuracies(embeddings, sampler) == [1.0] * 20
    probabilities = classify(embeddings[:2], torch.tensor([0, 1]), embeddings[[1, 0]])
    assert probabilities.argmax(1).tolist() == [1, 0]
    assert torch.allclose(probabilities.sum(1), torch.ones(2))


def test_mean_ci95_matches_the_normal_interval():
    mean, half = mean_ci95([0.0, 1.0, 0.0, 1.0])
    assert mean == 0.5 and half == pytest.approx(1.96 * np.std([0, 1, 0, 1], ddof=1) / 2)


def _support(n_way=3, n_shot=2, size=32):
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(n_way * n_shot, 3, size, size, generator=generator)
    return images, torch.arange(n_way).repeat_interleave(n_shot)


def test_fine_tuning_leaves_the_shared_model_unchanged_and_learns_the_support_set():
    torch.manual_seed(0)
    model = build_model("student").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images, labels = _support()
    steps = []
    result = fine_tune(model, images, labels, FineTuneConfig(steps=6, lr=3e-3), callback=lambda s, l: steps.append(s),
                       snapshot_every=3, snapshot_images=images)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    changed = [k for k, v in result.model.state_dict().items() if not torch.equal(before[k], v)]
    assert changed, "the tuned copy should differ from the shared model"
    assert steps == list(range(1, 7)) and len(result.losses) == 6 and not result.cancelled
    assert len(result.snapshots) == 3 and result.snapshots[0].shape == (6, model.embedding_dim)


def test_cancel_stops_fine_tuning_at_the_next_step():
    model = build_model("student").eval()
    images, labels = _support()
    cancel = threading.Event()
    result = fine_tune(model, images, labels, FineTuneConfig(steps=50), cancel=cancel,
                       callback=lambda step, loss: cancel.set() if step == 2 else None)
    assert result.cancelled and len(result.losses) == 2


def test_fine_tuning_steps_ignore_mirror_averaging_which_only_the_snapshots_use():
    images, labels = _support()
    runs = []
    for flip in (False, True):
        torch.manual_seed(0)
        model = build_model("student").eval()
        model.flip_average = flip
        runs.append(fine_tune(model, images, labels, FineTuneConfig(steps=3), snapshot_every=3,
                              snapshot_images=images))
    assert runs[0].losses == runs[1].losses                          # the same training steps
    assert not torch.allclose(runs[0].snapshots[-1], runs[1].snapshots[-1])   # embedded as the card says


def test_fine_tuning_shows_the_supports_photo_renderings_in_the_copies_the_config_asks_for():
    images, labels = _support()
    views = torch.rand(4, *images.shape, generator=torch.Generator().manual_seed(2))
    losses = {}
    for name, photo_copies, given in (("plain", 0, None), ("unused", 0, views), ("one", 1, views), ("two", 2, views),
                                      ("five", 5, views)):
        torch.manual_seed(0)
        model = build_model("student").eval()
        losses[name] = fine_tune(model, images, labels,
                                 FineTuneConfig(steps=3, photo_copies=photo_copies, augment_copies=2),
                                 support_views=given).losses
    assert losses["unused"] == losses["plain"]          # no photo copies asked: the renderings are not used
    assert losses["one"] != losses["plain"] and losses["two"] != losses["one"]
    assert losses["five"] == losses["two"]              # capped at the augmented copies (2): each of them a rendering
    model = build_model("student").eval()
    with pytest.raises(ValueError, match="K renderings of each support"):
        fine_tune(model, images, labels, FineTuneConfig(steps=1, photo_copies=1), support_views=views[:, :-1])
    with pytest.raises(ValueError, match="photo_copies must be 0 or more"):
        fine_tune(model, images, labels, FineTuneConfig(steps=1, photo_copies=-1), support_views=views)
