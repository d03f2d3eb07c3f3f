"""Training losses as pure functions on tensors."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def supcon_loss(features: Tensor, labels: Tensor, temperature: float = 0.1) -> Tensor:
    """Supervised contrastive loss, L_out form (Khosla et al. 2020, arXiv 2004.11362, eq. 2).

    features: (batch, n_views, dim), L2-normalised
    labels:   (batch,) integer classes
    returns:  scalar, mean over anchors that have at least one positive
    """
    if features.dim() != 3:
        raise ValueError(f"features needs to be (batch, n_views, dim), got shape {tuple(features.shape)}")
    if labels.shape[0] != features.shape[0]:
        raise ValueError(f"{labels.shape[0]} labels for {features.shape[0]} samples")
    batch, n_views, _ = features.shape
    anchors = features.transpose(0, 1).reshape(batch * n_views, -1)  # (V*B, D), view-major
    anchor_labels = labels.repeat(n_views)                           # (V*B,)
    logits = anchors @ anchors.T / temperature                        # (V*B, V*B)
    self_mask = torch.eye(len(anchors), dtype=torch.bool, device=features.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (anchor_labels[:, None] == anchor_labels[None, :]) & ~self_mask
    n_positives = positives.sum(dim=1)
    has_positive = n_positives > 0
    if not has_positive.any():
        raise ValueError("no anchor has a positive: use class-balanced batches (K >= 2 images per class)")
    mean_log_prob = log_prob.masked_fill(~positives, 0).sum(dim=1)[has_positive] / n_positives[has_positive]
    return -mean_log_prob.mean()


def kd_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """T^2 * KL(softmax(t/T) || softmax(s/T)), batch mean (Hinton et al. 2015).

    student_logits, teacher_logits: (batch, n_classes)
    """
    teacher_prob = F.softmax(teacher_logits / temperature, dim=-1)
    student_log_prob = F.log_softmax(student_logits / temperature, dim=-1)
    return F.kl_div(student_log_prob, teacher_prob, reduction="batchmean") * temperature ** 2


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, student_features: Tensor, labels: Tensor,
                      alpha: float = 0.1, temperature: float = 4.0, supcon_temperature: float = 0.1,
                      student_embedding: Tensor | None = None, teacher_embedding: Tensor | None = None,
                      beta: float = 0.0) -> Tensor:
    """alpha * T^2 * KL(teacher || student) + (1 - alpha) * SupCon(student)
    [+ beta * (1 - cos(student_embedding, teacher_embedding))].

    The first two terms are the source report's loss (alpha = 0.1 there); the optional third is
    an embedding-level term (as in FitNets-style feature matching, Romero et al. 2015).
    student_logits, teacher_logits: (batch, n_classes); student_features: (batch, n_views, dim);
    student_embedding, teacher_embedding: (batch, teacher_dim).
    """
    loss = alpha * kd_kl(student_logits, teacher_logits, temperature) + \
        (1 - alpha) * supcon_loss(student_features, labels, supcon_temperature)
    if beta:
        if student_embedding is None or teacher_embedding is None:
            raise ValueError("beta > 0 needs student_embedding and teacher_embedding")
        loss = loss + beta * (1 - F.cosine_similarity(student_embedding, teacher_embedding, dim=-1)).mean()
    return loss


def relation_loss(student_embedding: Tensor, teacher_embedding: Tensor) -> Tensor:
    """Mean squared difference between the batch's cosine-similarity matrices of the student's and the
    teacher's embeddings, the diagonal left out: the student keeps the teacher's distances between pictures,
    which is what nearest-prototype classification reads (similarity-preserving distillation, Tung and Mori
    2019). student_embedding: (batch, D_s), teacher_embedding: (batch, D_t); neither needs to be normalised."""
    if len(student_embedding) != len(teacher_embedding):
        raise ValueError(f"{len(student_embedding)} student rows for {len(teacher_embedding)} teacher rows")
    student, teacher = F.normalize(student_embedding, dim=-1), F.normalize(teacher_embedding, dim=-1)
    difference = student @ student.T - teacher @ teacher.T
    off_diagonal = ~torch.eye(len(student), dtype=torch.bool, device=student.device)
    return difference[off_diagonal].pow(2).mean()


def attention_map(maps: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, H*W): where a network looks, the mean over channels of the squared activations,
    L2-normalised (attention transfer, Zagoruyko and Komodakis 2017)."""
    return F.normalize(maps.float().pow(2).mean(dim=1).flatten(1), dim=-1)


def attention_transfer_loss(student_maps: Tensor, teacher_maps: Tensor) -> Tensor:
    """Mean squared distance between the student's and the teacher's attention maps (`attention_map`), the
    larger map average-pooled to the smaller one's side: the student learns where the teacher looks (on a
    photo: the sprite more than its background). student_maps: (B, C_s, H, W), teacher_maps: (B, C_t, H', W')."""
    if len(student_maps) != len(teacher_maps):
        raise ValueError(f"{len(student_maps)} student maps for {len(teacher_maps)} teacher maps")
    side = min(student_maps.shape[-1], teacher_maps.shape[-1])
    student = attention_map(F.adaptive_avg_pool2d(student_maps, side))
    teacher = attention_map(F.adaptive_avg_pool2d(teacher_maps.float(), side))
    return (student - teacher).pow(2).sum(dim=1).mean()
