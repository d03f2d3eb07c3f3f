"""The seeded photo-like renderer: a sprite and its alpha mask in, a picture like a phone photo of it out.

What a phone photo of a card, a screen or a toy does to a sprite, in order: it sits on some
background (a solid colour, a gradient, a texture, a real scene), at some size, place, rotation
and slant (perspective); the light is uneven and tinted; the lens blurs; the picture is taken at a
lower resolution than the sprite's, gets sensor noise, and is saved as a JPEG.

Backgrounds come from three disjoint **pools**: `train` (training), `val` (model selection on the
val species) and `test` (the benchmark's tracks). Each pool has its own real photographs (crops of
pictures that installed packages ship: scikit-learn's sample images, Gradio's demo images) and its
own random streams for colours and procedural textures, so a track measures generalisation to
backgrounds never seen in training. Training may add a fifth kind, **dead leaves** (`leaves=True`):
overlapping discs and boxes of random colours and power-law sizes, a synthetic stand-in for the
clutter of real scenes (Lee, Mumford and Huang 2001; Baradad et al. 2021), and may recolour its photo
crops (`recolour=True`: the same scenes in other hues, saturations and contrasts); the val and test pools
never use either. Everything is drawn from a `torch.Generator`: the same seed gives the same pictures.
"""
from __future__ import annotations

import importlib.util
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from .augment import hue_matrix

POOLS = ("train", "val", "test")
# (package, path inside it): photographs that installed packages already ship, one pool each.
PHOTOS = {
    "train": [("sklearn", "datasets/images/china.jpg"), ("gradio", "media_assets/images/cheetah.jpg"),
              ("gradio", "test_data/cheetah2.jpg"), ("gradio", "media_assets/images/tower.jpg")],
    "val": [("gradio", "media_assets/images/groot.jpeg")],
    "test": [("sklearn", "datasets/images/flower.jpg"), ("gradio", "media_assets/images/lion.jpg")],
}
POOL_SEEDS = {"train": 101, "val": 202, "test": 303}  # each pool's own streams of colours and textures
# Training may draw on more photographs (`extra_photos=True`): scikit-image's sample pictures (a requirement of
# training, requirements-data.txt), scenes and natural textures; the val and test pools, and the page's
# photo-ready views, never use them, so the page does not need scikit-image.
EXTRA_TRAIN_PHOTOS = [("skimage", f"data/{name}") for name in (
    "astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg", "ihc.png",
    "grass.png", "gravel.png", "brick.png")]


@dataclass(frozen=True)
class RenderConfig:
    scale: tuple[float, float] = (0.5, 0.95)       # sprite side / picture side
    shift: float = 0.05                             # how far past the edge the sprite may sit
    rotate_degrees: float = 25.0
    perspective: float = 0.25                       # slant: 0 = none
    flip: float = 0.5
    light: float = 0.5                              # strength of a linear lighting gradient
    exposure: tuple[float, float] = (0.6, 1.25)
    cast: float = 0.15                              # per-channel gain, +-
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.3, 1.2)    # pixels of the output
    downscale_p: float = 0.5
    downscale: tuple[float, ...] = (0.4, 0.55, 0.75)
    noise_p: float = 0.7
    noise_sigma: tuple[float, float] = (0.01, 0.05)
    jpeg_p: float = 0.8
    jpeg_quality: tuple[int, int] = (25, 90)


def photo_paths(pool: str, extra: bool = False) -> list[Path]:
    """The pool's photographs (with `extra`, the train pool's and `EXTRA_TRAIN_PHOTOS`), found inside their
    packages without importing them."""
    if extra and pool != "train":
        raise ValueError("the extra photographs are for training only (the train pool)")
    paths = []
    for package, relative in PHOTOS[pool] + (EXTRA_TRAIN_PHOTOS if extra else []):
        spec = importlib.util.find_spec(package)
        path = Path(next(iter(spec.submodule_search_locations))) / relative if spec else None
        if path is None or not path.exists():
            raise FileNotFoundError(f"background photo {package}/{relative} is missing: install the pinned "
                                    f"requirements (it ships with {package})")
        paths.append(path)
    return paths


def _noise(generator: torch.Generator, size: int) -> Tensor:
    """Fractal value noise in [0, 1]: (size, size)."""
    total = torch.zeros(1, 1, size, size)
    for octave in range(1, 6):
        cells = 2 ** octave
        grid = torch.rand(1, 1, cells, cells, generator=generator)
        total += F.interpolate(grid, size=(size, size), mode="bicubic", align_corners=False) / octave
    total = total[0, 0]
    return (total - total.min()) / (total.max() - total.min() + 1e-6)


def _dead_leaves(generator: torch.Generator, xs: Tensor, ys: Tensor, shapes: int = 150) -> Tensor:
    """Dead leaves: `shapes` discs and boxes painted back to front, diameters drawn from a power law (density
    ~ r^-2, from 4% to 70% of the side) so that a few large ones cover most of the picture and many
    small ones break it up, as objects do in real scenes; colours vary around a palette of three, as a
    scene's do. xs, ys: the picture's coordinates in [-1, 1], (size, size). (3, size, size) in [0, 1]."""
    size = xs.shape[0]
    low, high = 0.04, 0.7
    u = torch.rand(shapes, generator=generator)
    radii = 1 / (1 / low - u * (1 / low - 1 / high))                       # inverse CDF of r^-2 on [low, high]
    radii = radii.sort(descending=True).values                             # the large ones first (behind)
    centres = torch.rand(shapes, 2, generator=generator) * 2.4 - 1.2
    palette = torch.rand(3, 3, generator=generator)
    picks = (torch.rand(shapes, generator=generator) * 3).long()
    colours = (palette[picks] + (torch.rand(shapes, 3, generator=generator) - 0.5) * 0.5).clamp(0, 1)
    boxes = torch.rand(shapes, generator=generator) < 0.5
    aspect = 0.5 + torch.rand(shapes, generator=generator)
    out = palette[0].view(3, 1, 1).expand(3, size, size).clone()
    for k in range(shapes):
        dx, dy = (xs - centres[k, 0]).abs() * aspect[k], (ys - centres[k, 1]).abs() / aspect[k]
        inside = torch.maximum(dx, dy) < radii[k] if boxes[k] else dx ** 2 + dy ** 2 < radii[k] ** 2
        out[:, inside] = colours[k, :, None]
    return out


def make_backgrounds(pool: str, count: int, size: int, seed: int = 0, leaves: bool = False,
                     extra_photos: bool = False, recolour: bool = False) -> Tensor:
    """`count` backgrounds of the pool, in equal shares solid, gradient, texture, photo crop, and dead leaves
    when `leaves` (training only: the val and test pools never draw them): (count, 3, size, size).
    extra_photos: photo crops from `EXTRA_TRAIN_PHOTOS` too (training only).
    recolour: each photo crop's colours changed at random (`_recolour`: a hue turn, a saturation and a
    contrast), so that a few photographs give real scenes' shapes and clutter in colours they do not have
    (training only)."""
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got '{pool}'")
    if (leaves or recolour) and pool != "train":
        raise ValueError("dead-leaves and recoloured backgrounds are for training only (the train pool)")
    generator = torch.Generator().manual_seed(POOL_SEEDS[pool] * 100_003 + seed)
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in photo_paths(pool, extra_photos)]
    rand = lambda *shape: torch.rand(*shape, generator=generator)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    out = torch.empty(count, 3, size, size)
    for k in range(count):
        colours = rand(3, 3)                                            # up to three colours, rows
        kind = k % (5 if leaves else 4)
        if kind == 0:
            out[k] = colours[0].view(3, 1, 1).expand(3, size, size)
        elif kind == 1:
            angle = rand(1) * 2 * math.pi
            t = ((xs * torch.cos(angle) + ys * torch.sin(angle)) * 0.5 + 0.5).clamp(0, 1)
            out[k] = colours[0].view(3, 1, 1) * (1 - t) + colours[1].view(3, 1, 1) * t
        elif kind == 2:
            if rand(1) < 0.5:                                           # clouds, marble, fabric-like
                t = _noise(generator, size)
            else:                                                       # stripes or checks
                f = 2 + rand(2) * 10
                t = torch.sin(xs * f[0] * math.pi + rand(1) * 6) * torch.sin(ys * f[1] * math.pi + rand(1) * 6)
                t = (t > 0).float() if rand(1) < 0.5 else t * 0.5 + 0.5
            out[k] = colours[0].view(3, 1, 1) * (1 - t) + colours[1].view(3, 1, 1) * t
        elif kind == 4:
            out[k] = _dead_leaves(generator, xs, ys)
        else:
            photo = photos[int(rand(1) * len(photos))]
            h, w, _ = photo.shape
            side = int(min(h, w) * (0.25 + 0.75 * float(rand(1))))
            top, left = int(rand(1) * (h - side)), int(rand(1) * (w - side))
            crop = Image.fromarray(photo[top:top + side, left:left + side]).resize((size, size), Image.Resampling.BILINEAR)
            out[k] = torch.from_numpy(np.asarray(crop).copy()).permute(2, 0, 1).float() / 255
            if recolour:
                out[k] = _recolour(out[k], generator)
    return out


def _recolour(picture: Tensor, generator: torch.Generator) -> Tensor:
    """A photo crop (3, S, S) in [0, 1] in other colours: its hue turned by any angle (half the time mirrored
    first: two channels swapped), its saturation scaled by 0.3-1.7 and its contrast by 0.7-1.3, about its mean."""
    rand = lambda *shape: torch.rand(*shape, generator=generator)
    if rand(1) < 0.5:
        picture = picture[[1, 0, 2]]
    turned = torch.einsum("ij,jhw->ihw", hue_matrix(rand(1) * 2 * math.pi)[0], picture)
    grey = turned.mean(0, keepdim=True)
    saturated = grey + (turned - grey) * (0.3 + 1.4 * rand(1))
    return (saturated.mean() + (saturated - saturated.mean()) * (0.7 + 0.6 * rand(1))).clamp(0, 1)


def _homographies(batch: int, config: RenderConfig, rand) -> Tensor:
    """(batch, 3, 3): output picture coordinates -> sprite coordinates, both in [-1, 1]."""
    scale = config.scale[0] + (config.scale[1] - config.scale[0]) * rand(batch)
    angle = (rand(batch) * 2 - 1) * math.radians(config.rotate_degrees)
    flip = torch.where(rand(batch) < config.flip, -1.0, 1.0)
    room = (1 - scale).clamp(min=0) + config.shift
    shift = (rand(batch, 2) * 2 - 1) * room[:, None]
    forward = torch.zeros(batch, 3, 3)                                  # sprite -> picture
    forward[:, 0, 0], forward[:, 0, 1] = torch.cos(angle) * scale * flip, -torch.sin(angle) * scale
    forward[:, 1, 0], forward[:, 1, 1] = torch.sin(angle) * scale * flip, torch.cos(angle) * scale
    forward[:, :2, 2] = shift
    forward[:, 2, :2] = (rand(batch, 2) * 2 - 1) * config.perspective   # slant: a projective row
    forward[:, 2, 2] = 1
    return torch.linalg.inv(forward)


def gaussian_blur(images: Tensor, sigma: Tensor) -> Tensor:
    """Per-image Gaussian blur. images: (B, C, H, W); sigma: (B,) pixels (0 = none)."""
    batch, channels, height, width = images.shape
    radius = 4
    x = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernel = torch.exp(-x[None] ** 2 / (2 * sigma.clamp(min=1e-3)[:, None] ** 2))
    kernel = torch.where(sigma[:, None] > 0, kernel, (x[None] == 0).to(images.dtype))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(channels, 0)   # (B*C, 2r+1)
    flat = F.pad(images.reshape(1, batch * channels, height, width), [radius] * 4, mode="replicate")
    flat = F.conv2d(flat, kernel[:, None, None, :], groups=batch * channels)
    flat = F.conv2d(flat, kernel[:, None, :, None], groups=batch * channels)
    return flat.reshape(batch, channels, height, width)


def composite(images: Tensor, alpha: Tensor, backgrounds: Tensor) -> Tensor:
    """Put sprites on backgrounds. images: (B, 3, H, W) in [0, 1], the sprite over **white**;
    alpha: (B, 1, H, W) in [0, 1]; backgrounds: (B, 3, H, W). Since images = a*F + (1-a)*1, the
    sprite on background G is a*F + (1-a)*G = images + (1-a)*(G-1)."""
    return images + (1 - alpha) * (backgrounds - 1)


def render(images: Tensor, alpha: Tensor, backgrounds: Tensor, generator: torch.Generator,
           config: RenderConfig = RenderConfig(), with_mask: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Photo-like pictures of sprites.

    images:      (B, 3, S, S) in [0, 1], sprites over white (as the dataset stores them)
    alpha:       (B, 1, S, S) in [0, 1]
    backgrounds: (M, 3, S', S') a pool's bank (`make_backgrounds`); each picture draws one (randomly flipped),
                 cropped at one random position per batch
    returns:     (B, 3, S, S) in [0, 1]; with `with_mask`, also (B, 1, S, S): where the sprite lies in each
                 picture (its alpha after the pose, before light and lens), a segmentation target
    """
    batch, _, size, _ = images.shape
    rand = lambda *shape: torch.rand(*shape, generator=generator)
    # background: a random bank entry per picture, randomly flipped; one crop position for the batch
    picks = (rand(batch) * len(backgrounds)).long()
    room = backgrounds.shape[-1] - size
    top, left = (rand(2) * (room + 1)).long().clamp(max=room).tolist()
    ground = backgrounds[picks][:, :, top:top + size, left:left + size]
    ground = torch.where(rand(batch, 1, 1, 1) < 0.5, ground, ground.flip(-1))

    # pose: one homography per picture; outside the sprite alpha is 0 and the sprite is white
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    points = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(1, -1, 3)   # (1, S*S, 3)
    mapped = points @ _homographies(batch, config, rand).transpose(1, 2)              # (B, S*S, 3)
    grid = (mapped[..., :2] / mapped[..., 2:].clamp(min=1e-3)).reshape(batch, size, size, 2)
    sprite = 1 - F.grid_sample(1 - images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    mask = F.grid_sample(alpha, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = composite(sprite, mask, ground)

    # light: exposure, a colour cast, a linear gradient across the picture
    exposure = config.exposure[0] + (config.exposure[1] - config.exposure[0]) * rand(batch, 1, 1, 1)
    cast = 1 + (rand(batch, 3, 1, 1) * 2 - 1) * config.cast
    angle = rand(batch, 1, 1) * 2 * math.pi
    gradient = (xs * torch.cos(angle) + ys * torch.sin(angle)) * 0.5                  # (B, S, S)
    light = 1 + config.light * rand(batch, 1, 1) * gradient
    out = (out * exposure * cast * light[:, None]).clamp(0, 1)

    # lens blur, then a lower-resolution sensor (down and up again)
    sigma = config.blur_sigma[0] + (config.blur_sigma[1] - config.blur_sigma[0]) * rand(batch)
    out = gaussian_blur(out, torch.where(rand(batch) < config.blur_p, sigma, 0.0))
    factor_index = (rand(batch) * len(config.downscale)).long()
    downscale = rand(batch) < config.downscale_p
    for k, factor in enumerate(config.downscale):
        chosen = downscale & (factor_index == k)
        if chosen.any():
            small = F.interpolate(out[chosen], scale_factor=factor, mode="bilinear", antialias=True)
            out[chosen] = F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)

    # sensor noise, then JPEG
    noise_sigma = config.noise_sigma[0] + (config.noise_sigma[1] - config.noise_sigma[0]) * rand(batch, 1, 1, 1)
    noise = torch.randn(out.shape, generator=generator) * noise_sigma
    out = (out + torch.where(rand(batch, 1, 1, 1) < config.noise_p, noise, 0.0)).clamp(0, 1)
    quality = config.jpeg_quality[0] + (rand(batch) * (config.jpeg_quality[1] - config.jpeg_quality[0] + 1)).long()
    use_jpeg = (rand(batch) < config.jpeg_p).tolist()
    pixels = out.mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy().copy()   # (B, S, S, 3)
    for k in range(batch):
        if use_jpeg[k]:
            buffer = io.BytesIO()
            Image.fromarray(pixels[k]).save(buffer, format="JPEG", quality=int(quality[k]))
            pixels[k] = np.asarray(Image.open(buffer).convert("RGB"))
    pictures = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    return (pictures, mask) if with_mask else pictures
