"""pokedemo.losses against plain reference implementations."""
import math

import pytest
import torch
import torch.nn.functional as F

from pokedemo.losses import attention_transfer_loss, distillation_loss, kd_kl, relation_loss, supcon_loss


def supcon_double_loop(features, labels, temperature):
    """Khosla et al. 2020, eq. 2, written out anchor by anchor."""
    batch, n_views, _ = features.shape
    anchors = [(features[i, v], int(labels[i])) for v in range(n_views) for i in range(batch)]
    total, counted = 0.0, 0
    for a, (za, ya) in enumerate(anchors):
        denominator = sum(math.exp(float(za @ zk) / temperature) for k, (zk, _) in enumerate(anchors) if k != a)
        positives = [zp for p, (zp, yp) in enumerate(anchors) if p != a and yp == ya]
        if not positives:
            continue
        total += -sum(float(za @ zp) / temperature - math.log(denominator) for zp in positives) / len(positives)
        counted += 1
    return total / counted


@pytest.mark.parametrize("n_views", [1, 2])
def test_vectorised_supcon_matches_the_double_loop(n_views):
    generator = torch.Generator().manual_seed(n_views)
    features = F.normalize(torch.randn(10, n_views, 6, generator=generator, dtype=torch.float64), dim=-1)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 4, 4])  # class 3 has one sample: no positive with one view
    expected = supcon_double_loop(features, labels, 0.2)
    assert supcon_loss(features, labels, 0.2).item() == pytest.approx(expected, rel=1e-9)


def test_supcon_is_lower_when_classes_are_clustered():
    labels = torch.arange(4).repeat_interleave(4)
    clustered = F.normalize(torch.eye(8)[labels] + 0.01 * torch.randn(16, 8), dim=-1)[:, None]
    shuffled = clustered[torch.randperm(16)]
    assert supcon_loss(clustered, labels) < supcon_loss(shuffled, labels)


def test_supcon_rejects_bad_shapes_and_batches_without_positives():
    with pytest.raises(ValueError, match=r"\(batch, n_views, dim\)"):
        supcon_loss(torch.randn(4, 3), torch.arange(4))
    with pytest.raises(ValueError, match="no anchor has a positive"):
        supcon_loss(F.normalize(torch.randn(4, 1, 3), dim=-1), torch.arange(4))


def test_kd_is_zero_for_identical_logits_and_scales_with_t_squared():
    logits = torch.randn(5, 7)
    assert kd_kl(logits, logits, 4.0).item() == pytest.approx(0.0, abs=1e-6)
    other = torch.randn(5, 7)
    manual = (F.softmax(other / 2, -1) * (F.log_softmax(other / 2, -1) - F.log_softmax(logits / 2, -1))).sum(-1).mean()
    assert kd_kl(logits, other, 2.0).item() == pytest.approx(4 * manual.item(), rel=1e-5)


def test_distillation_loss_is_the_weighted_sum_of_its_terms():
    student, teacher = torch.randn(8, 5), torch.randn(8, 5)
    features = F.normalize(torch.randn(8, 1, 4), dim=-1)
    labels = torch.arange(4).repeat(2)
    s_emb, t_emb = torch.randn(8, 6), torch.randn(8, 6)
    expected = 0.3 * kd_kl(student, teacher, 3.0) + 0.7 * supcon_loss(features, labels, 0.1)
    assert distillation_loss(student, teacher, features, labels, 0.3, 3.0).item() == pytest.approx(expected.item())
    with_embedding = distillation_loss(student, teacher, features, labels, 0.3, 3.0, 0.1, s_emb, t_emb, beta=2.0)
    cosine = (1 - F.cosine_similarity(s_emb, t_emb)).mean()
    assert with_embedding.item() == pytest.approx(expected.item() + 2 * cosine.item(), rel=1e-5)


def test_relation_loss_compares_distances_not_coordinates():
    torch.manual_seed(0)
    teacher = torch.randn(8, 16)
    rotation, _ = torch.linalg.qr(torch.randn(16, 16))
    assert relation_loss(3 * teacher @ rotation, teacher) < 1e-10          # the same distances, other axes and scale
    assert relation_loss(teacher[:, :12] @ torch.randn(12, 4), teacher) > 0.01   # another student, other distances
    different = torch.randn(8, 16)
    manual = ((F.normalize(different, dim=1) @ F.normalize(different, dim=1).T
               - F.normalize(teacher, dim=1) @ F.normalize(teacher, dim=1).T).pow(2).sum() / (8 * 7))
    assert torch.isclose(relation_loss(different, teacher), manual)   # the diagonal (always 1 = 1) left out
    with pytest.raises(ValueError, match="rows"):
        relation_loss(teacher[:4], teacher)


def test_attention_transfer_compares_where_the_maps_are_strong_not_their_channels_or_scale():
    torch.manual_seed(0)
    student = torch.rand(3, 6, 4, 4)
    same_look = 5 * student.repeat(1, 3, 1, 1)                               # more channels, another scale
    assert attention_transfer_loss(student, same_look) < 1e-10
    finer = F.interpolate(student, scale_factor=2, mode="nearest")            # 8x8: pooled back to 4x4
    assert attention_transfer_loss(student, finer) < 1e-10
    elsewhere = torch.zeros(3, 6, 4, 4)
    elsewhere[:, :, 0, 0] = 1                                                 # all in one corner
    expected = (F.normalize(student.pow(2).mean(1).flatten(1), dim=1)
                - F.normalize(elsewhere.pow(2).mean(1).flatten(1), dim=1)).pow(2).sum(1).mean()
    assert torch.isclose(attention_transfer_loss(student, elsewhere), expected) and expected > 0.1
    with pytest.raises(ValueError, match="maps"):
        attention_transfer_loss(student[:2], student)
