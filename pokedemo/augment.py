"""Batch augmentations on (B, 3, S, S) float tensors in [0, 1], one random draw per image.

They teach what the benchmark asks: a query may be the back, the shiny (recoloured) or the
painted art of a species whose support showed another source. Backgrounds are white, so
geometric transforms fill with white.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# RGB <-> YIQ: a hue shift is a rotation of the (I, Q) plane.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


@dataclass(frozen=True)
class AugmentConfig:
    scale: tuple[float, float] = (0.7, 1.15)   # zoom of the random crop (1 = unchanged)
    translate: float = 0.12                   # fraction of the image
    rotate_degrees: float = 10.0
    flip: float = 0.5
    hue: float = 0.5                          # max hue rotation as a fraction of a full turn
    hue_p: float = 0.8
    saturation: float = 0.4
    brightness: float = 0.2
    contrast: float = 0.2
    grayscale_p: float = 0.1
    erase_p: float = 0.25


def hue_matrix(angles: Tensor) -> Tensor:
    """(B,) radians -> (B, 3, 3) RGB->RGB hue rotation matrices."""
    cos, sin = torch.cos(angles), torch.sin(angles)
    rotation = torch.zeros(len(angles), 3, 3)
    rotation[:, 0, 0] = 1
    rotation[:, 1, 1], rotation[:, 1, 2], rotation[:, 2, 1], rotation[:, 2, 2] = cos, -sin, sin, cos
    return _YIQ_TO_RGB @ rotation @ _RGB_TO_YIQ


def augment(images: Tensor, config: AugmentConfig = AugmentConfig(), generator: torch.Generator | None = None,
            colour: bool = True, geometry: bool = True, erase: bool = True) -> Tensor:
    """images: (B, 3, S, S) in [0, 1] -> augmented copy, same shape. `geometry=False, erase=False`
    leaves only the colour changes (for a sprite that `render` will pose)."""
    batch, device = images.shape[0], images.device
    rand = lambda *shape: torch.rand(*shape, generator=generator)
    out = images
    if geometry:
        # one affine: one affine (zoom, rotation, translation, flip) per image, white fill
        zoom = config.scale[0] + (config.scale[1] - config.scale[0]) * rand(batch)
        angle = (rand(batch) * 2 - 1) * math.radians(config.rotate_degrees)
        flip = torch.where(rand(batch) < config.flip, -1.0, 1.0)
        shift = (rand(batch, 2) * 2 - 1) * config.translate * 2
        theta = torch.zeros(batch, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle) / zoom * flip, -torch.sin(angle) / zoom
        theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle) / zoom * flip, torch.cos(angle) / zoom
        theta[:, :, 2] = shift
        grid = F.affine_grid(theta.to(device, images.dtype), list(images.shape), align_corners=False)
        out = 1 - F.grid_sample(1 - images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    if colour:
        hue = torch.where(rand(batch) < config.hue_p, (rand(batch) * 2 - 1) * config.hue * 2 * math.pi, 0.0)
        matrix = hue_matrix(hue).to(device, images.dtype)                  # (B, 3, 3)
        out = torch.einsum("bij,bjhw->bihw", matrix, out)
        gray = out.mul(torch.tensor([0.299, 0.587, 0.114], device=device).view(1, 3, 1, 1)).sum(1, keepdim=True)
        saturation = 1 + (rand(batch) * 2 - 1) * config.saturation
        saturation = torch.where(rand(batch) < config.grayscale_p, 0.0, saturation)
        out = gray + (out - gray) * saturation.view(-1, 1, 1, 1).to(device)
        brightness = 1 + (rand(batch) * 2 - 1) * config.brightness
        contrast = 1 + (rand(batch) * 2 - 1) * config.contrast
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = (out - mean) * contrast.view(-1, 1, 1, 1).to(device) + mean * brightness.view(-1, 1, 1, 1).to(device)
        out = out.clamp(0, 1)

    # random erasing: one white-or-grey rectangle of up to a quarter of the image
    if erase and config.erase_p > 0:
        size = images.shape[-1]
        erase = rand(batch) < config.erase_p
        side = (rand(batch, 2) * 0.35 + 0.15) * size
        corner = rand(batch, 2) * (size - side)
        ys = torch.arange(size).view(1, size, 1)
        xs = torch.arange(size).view(1, 1, size)
        box = ((ys >= corner[:, 0, None, None]) & (ys < (corner[:, 0] + side[:, 0])[:, None, None]) &
               (xs >= corner[:, 1, None, None]) & (xs < (corner[:, 1] + side[:, 1])[:, None, None]) &
               erase[:, None, None])
        out = torch.where(box[:, None].to(device), rand(batch, 1, 1, 1).to(device), out)
    return out


class MixStyle:
    """MixStyle (Zhou et al., ICLR 2021): in training, with probability `p` per batch and layer, the
    outputs of a model's early stages (`Embedder.style_layers`) keep their normalised content but take
    a random mix of their own and another picture's channel statistics (mean and standard deviation
    over the picture): the picture's content with a blend of another's colours, texture and background.
    Mixing weights are Beta(0.1, 0.1), so most mixes are near one picture or the other. Nothing happens
    in eval mode, so the shipped model is unchanged in shape and cost. Draws come from `generator`
    (seed it each epoch); `remove()` takes the hooks off."""

    def __init__(self, model, p: float, concentration: float = 0.1, eps: float = 1e-6):
        self.p, self.concentration, self.eps = p, concentration, eps
        self.generator = torch.Generator()
        self._handles = [layer.register_forward_hook(self._mix) for layer in model.style_layers()]

    def _mix(self, module, inputs, output: Tensor) -> Tensor | None:
        if not module.training or float(torch.rand(1, generator=self.generator)) >= self.p:
            return None
        batch = output.shape[0]
        mean = output.mean(dim=(2, 3), keepdim=True).detach()
        std = (output.var(dim=(2, 3), keepdim=True) + self.eps).sqrt().detach()
        gamma = torch.distributions.Gamma(self.concentration, 1.0)
        seed = int(torch.randint(2 ** 62, (1,), generator=self.generator))
        with torch.random.fork_rng(devices=[]):     # a Beta draw from our own stream: the CPU generator is
            torch.random.default_generator.manual_seed(seed)   # seeded here and put back after; CUDA's untouched
            a, b = gamma.sample((batch,)), gamma.sample((batch,))
        weight = (a / (a + b).clamp(min=1e-12)).view(batch, 1, 1, 1).to(output.device, output.dtype)
        order = torch.randperm(batch, generator=self.generator).to(output.device)
        mixed_mean = weight * mean + (1 - weight) * mean[order]
        mixed_std = weight * std + (1 - weight) * std[order]
        return (output - mean) / std * mixed_std + mixed_mean

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
