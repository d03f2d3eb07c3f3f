"""The networks: a ResNet18 teacher, a depthwise-separable student of at most 100,000
parameters, the source report's 3-layer CNN, and a plain dict from name to factory.

Every model takes (N, 3, S, S) floats in [0, 1] and exposes `embed(images) -> (N, D)`,
L2-normalised. Heads used only in training (`projection`, `classifier`, `to_teacher`) live
in `TrainingHeads`, are counted apart and are not shipped with the student.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import resnet18

NORMALISATION = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}


def _normalise(images: Tensor) -> Tensor:
    return (images - 0.5) / 0.25


class Embedder(nn.Module):
    """Base: subclasses define `features(x) -> (N, D)`; `embed` L2-normalises them."""

    embedding_dim: int
    flip_average: bool = False   # embed a picture as the mean of it and its mirror image (set from the card)
    # photos embedded with their cut-out too (`segment.PhotoBlend`, set from the card's `photo_blend`); held
    # outside the module tree: not trained, not saved, shared by copies
    photo_blend = None
    # test-time arithmetic in this dtype (torch.autocast), weights and pictures channels-last; set by
    # `checkpoint.load_checkpoint` from the card's `inference_dtype` where it is faster on this machine. None: float32
    inference_dtype: torch.dtype | None = None

    def embed(self, images: Tensor, test_time: bool = True, blend_photos: bool = True) -> Tensor:
        """(N, 3, S, S) in [0, 1] -> (N, D) L2-normalised, on the images' device (the model may be on a GPU).

        test_time: the card's test-time extras, each chosen on the val species: `flip_average`, the normalised
        mean of the picture's and its mirror image's embeddings (a second pass), and `photo_blend`, where a
        picture is a photo (`images.is_photo`), its embedding blended with its cut-out's (a segmenter pass and a
        second pass on the photos alone). Training and fine-tuning steps pass False. blend_photos=False leaves
        the photo blend out alone: the supports' photo-like views (`tracks.embed_views`) are renderings of sprites
        the prototype already holds, there to bring the photo's look to it. `inference_dtype`, where set, is used
        at test time only."""
        weight = next(self.parameters())
        pictures = images.to(device=weight.device, dtype=weight.dtype)
        flip = self.flip_average and test_time
        low = test_time and self.inference_dtype is not None

        def look(batch: Tensor) -> Tensor:      # the model's passes alone in `inference_dtype` (not the segmenter's)
            if not low:
                return self.embed_pictures(batch, flip)
            with torch.autocast(batch.device.type, dtype=self.inference_dtype):
                return self.embed_pictures(batch.contiguous(memory_format=torch.channels_last), flip)

        embeddings = look(pictures)
        if test_time and blend_photos and self.photo_blend is not None:
            embeddings = self.photo_blend(look, pictures, embeddings)
        return embeddings.float().to(images.device)

    @property
    def inference_dtype_name(self) -> str:
        """The test-time arithmetic's name, as cards and benchmark rows write it ("float32", "bfloat16")."""
        return str(self.inference_dtype or torch.float32).removeprefix("torch.")

    def set_inference_dtype(self, dtype: torch.dtype | None) -> "Embedder":
        """Test-time arithmetic in `dtype` (None: float32), the weights laid out channels-last for it."""
        self.inference_dtype = dtype
        return self.to(memory_format=torch.contiguous_format if dtype is None else torch.channels_last)

    def embed_pictures(self, pictures: Tensor, flip_average: bool) -> Tensor:
        """`embed`'s arithmetic alone, on pictures already on the model's device and dtype (what an export runs)."""
        if not flip_average:
            return F.normalize(self.features(_normalise(pictures)).float(), dim=-1)
        count = pictures.shape[0]
        pairs = F.normalize(self.features(_normalise(torch.cat([pictures, pictures.flip(-1)]))).float(), dim=-1)
        return F.normalize(pairs[:count] + pairs[count:], dim=-1)

    def forward(self, images: Tensor) -> Tensor:
        return self.features(_normalise(images))

    def style_layers(self) -> list[nn.Module]:
        """The early stages whose outputs still carry the picture's style (colour, texture, background)
        rather than its content: where MixStyle mixes feature statistics in training (`augment.MixStyle`)."""
        raise NotImplementedError

    def attention_layer(self) -> nn.Module:
        """The module whose output maps (B, C, H, W) attention transfer compares (`losses.attention_transfer_loss`)."""
        raise NotImplementedError(f"{type(self).__name__} names no layer for attention transfer")


class Teacher(Embedder):
    """torchvision ResNet18 with its stock stem (7x7 stride 2 + max-pool): at 64 px the last
    stage sees 2x2. `stem_pool=False` drops the max-pool (the last stage sees 4x4, the same
    weights, 3.8x the compute): the shipped teacher, which wins on every val track (training.md);
    the page pays for it with bfloat16 arithmetic at test time (its card's `inference_dtype`).
    `classifier` over the base species is kept: its logits feed distillation."""

    def __init__(self, n_classes: int = 448, stem_pool: bool = True):
        super().__init__()
        if not isinstance(stem_pool, bool):
            raise ValueError(f"stem_pool is true or false, not {stem_pool!r}")
        self.backbone = resnet18(weights=None)
        self.backbone.fc = nn.Identity()
        if not stem_pool:
            self.backbone.maxpool = nn.Identity()
        self.embedding_dim = 512
        self.classifier = nn.Linear(512, n_classes)
        # the default is left out, so a card written before the option existed reads the same
        self.arguments = {"n_classes": n_classes} | ({} if stem_pool else {"stem_pool": False})

    def features(self, x: Tensor) -> Tensor:
        return self.backbone(x)

    def style_layers(self) -> list[nn.Module]:
        return [self.backbone.layer1, self.backbone.layer2]

    def attention_layer(self) -> nn.Module:
        return self.backbone.layer3       # 4x4 at 64 px with the max-pool (8x8 without): pooled to the student's side


def _separable(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    """Depthwise 3x3 then pointwise 1x1 (MobileNet, Howard et al. 2017)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_in, 3, stride, 1, groups=c_in, bias=False), nn.BatchNorm2d(c_in), nn.ReLU(inplace=True),
        nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Student(Embedder):
    """Depthwise-separable CNN: a stem, then separable blocks, a pool over the last map, D = widths[-1].
    Stem: `patch=0` is a 3x3 stride-2 conv (64 px -> 32); `patch=p` a pxp stride-p "patchify" conv
    (64 px -> 64/p), which skips the costly high-resolution stage of many small depthwise ops.
    Pool: `"mean"` the global average; `"attention"` a weighted average whose weights a 1x1 conv scores
    from the map (a softmax over the positions, widths[-1] more numbers), so that the embedding may
    leave out the background of a photo. Its scores start at 0: uniform weights, the global average."""

    def __init__(self, widths: tuple[int, ...] = (48, 64, 96, 128, 176, 216),
                 strides: tuple[int, ...] = (1, 2, 1, 2, 1), patch: int = 4, pool: str = "mean"):
        super().__init__()
        if len(strides) != len(widths) - 1:
            raise ValueError(f"need one stride per block: {len(widths) - 1} blocks, {len(strides)} strides")
        if pool not in ("mean", "attention"):
            raise ValueError(f"pool is 'mean' or 'attention', not {pool!r}")
        stem = nn.Conv2d(3, widths[0], patch, patch, bias=False) if patch else nn.Conv2d(3, widths[0], 3, 2, 1, bias=False)
        layers = [stem, nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)]
        layers += [_separable(a, b, s) for a, b, s in zip(widths[:-1], widths[1:], strides)]
        self.body = nn.Sequential(*layers)
        # no bias: a softmax over the positions ignores a score added to all of them
        self.attention = nn.Conv2d(widths[-1], 1, 1, bias=False) if pool == "attention" else None
        if self.attention is not None:
            nn.init.zeros_(self.attention.weight)
        self.embedding_dim = widths[-1]
        self.arguments = {"widths": list(widths), "strides": list(strides), "patch": patch} | \
            ({} if pool == "mean" else {"pool": pool})

    def features(self, x: Tensor) -> Tensor:
        maps = self.body(x)
        if self.attention is None:
            return maps.mean(dim=(2, 3))
        weights = torch.softmax(self.attention(maps).flatten(2), dim=-1)          # (N, 1, H*W)
        return (maps.flatten(2) * weights).sum(dim=-1)

    def style_layers(self) -> list[nn.Module]:
        return [self.body[3], self.body[4]]          # the first two separable blocks

    def attention_layer(self) -> nn.Module:
        return self.body                  # the last maps, before the pool


class PaperStudent(Embedder):
    """The source report's student: three 3x3 conv layers (64, 128, 256) with max-pooling and a
    fully connected embedding (about 0.7M parameters at 64 px)."""

    def __init__(self, embedding_dim: int = 128):
        super().__init__()
        block = lambda a, b: [nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        self.body = nn.Sequential(*block(3, 64), *block(64, 128), *block(128, 256), nn.AdaptiveAvgPool2d(4))
        self.fc = nn.Linear(256 * 16, embedding_dim)
        self.embedding_dim = embedding_dim
        self.arguments = {"embedding_dim": embedding_dim}

    def features(self, x: Tensor) -> Tensor:
        return self.fc(self.body(x).flatten(1))

    def style_layers(self) -> list[nn.Module]:
        return [self.body[3], self.body[7]]          # after the first two blocks' pooling


class TrainingHeads(nn.Module):
    """Heads used only while training: SupCon projection, base-species classifier, and a map to
    the teacher's embedding space for embedding-level distillation."""

    def __init__(self, embedding_dim: int, n_classes: int, projection_dim: int = 128, teacher_dim: int = 0):
        super().__init__()
        self.projection = nn.Sequential(nn.Linear(embedding_dim, embedding_dim), nn.ReLU(inplace=True),
                                        nn.Linear(embedding_dim, projection_dim))
        self.classifier = nn.Linear(embedding_dim, n_classes) if n_classes else None
        self.to_teacher = nn.Linear(embedding_dim, teacher_dim) if teacher_dim else None


MODELS = {"teacher": Teacher, "student": Student, "paper-student": PaperStudent}


def build_model(architecture: str, **arguments) -> Embedder:
    if architecture not in MODELS:
        raise ValueError(f"unknown architecture '{architecture}'; choose from {sorted(MODELS)}")
    try:
        return MODELS[architecture](**arguments)
    except TypeError as error:
        raise ValueError(f"bad arguments for '{architecture}': {error}") from None


class Embedding(nn.Module):
    """A model's `embed` as its forward, mirror averaging included when the model has it: what an export
    (ONNX) should compute. (N, 3, S, S) in [0, 1] -> (N, D)."""

    def __init__(self, model: Embedder):
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        return self.model.embed_pictures(images, self.model.flip_average)


def pick_device(name: str | None = None) -> torch.device:
    """"auto" (the default, or $POKEDEMO_DEVICE): CUDA when present, else the CPU; or a torch device name."""
    name = name or os.environ.get("POKEDEMO_DEVICE", "auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def count_parameters(module: nn.Module) -> int:
    """Every parameter and floating-point buffer that a checkpoint saves (BatchNorm statistics included)."""
    return sum(t.numel() for t in module.state_dict().values() if t.is_floating_point())


def to_tensor(images: np.ndarray) -> Tensor:
    """(N, S, S, 3) uint8 -> (N, 3, S, S) float in [0, 1]. A read-only array (a decoded picture) is copied."""
    images = np.ascontiguousarray(images)
    return torch.from_numpy(images if images.flags.writeable else images.copy()).permute(0, 3, 1, 2).float().div_(255)


@torch.inference_mode()
def embed_array(model: Embedder, images: np.ndarray, batch_size: int = 256, progress=None,
                blend_photos: bool = True) -> Tensor:
    """Embed uint8 images (N, S, S, 3) in batches; returns (N, D) L2-normalised, on the CPU. blend_photos: as in
    `Embedder.embed`."""
    model.eval()
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    out = []
    for start in range(0, len(images), batch_size):
        batch = to_tensor(images[start:start + batch_size]).to(device=device, dtype=dtype)
        out.append(model.embed(batch, blend_photos=blend_photos).float().cpu())
        if progress is not None:
            progress(min(start + batch_size, len(images)), len(images))
    return torch.cat(out) if out else torch.empty(0, model.embedding_dim)
