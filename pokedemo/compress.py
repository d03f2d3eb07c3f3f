"""Compression of the student: an inference rewrite (BatchNorm folded, channels-last) and magnitude
pruning, plus the measurements a scoreboard needs: size on disk, FLOPs, latency and throughput.

int8 is not offered: the FX quantisation it used (`torch.ao.quantization.quantize_fx`) is deprecated,
and on this CPU it measured no faster than the BatchNorm-folded float student (10,564 vs 10,445
images/s at batch 64, docs/benchmarks.json of commit 99118f3); the maintained PT2E path (torchao)
needs an inductor compile to be fast on x86, which a 2-core Space would pay at every start."""
from __future__ import annotations

import copy
import io
import statistics
import time

import torch
from safetensors.torch import save as safetensors_bytes
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .models import Embedder


class GraphEmbedder(nn.Module):
    """A rewritten (BatchNorm-folded) copy of a network behind the same `embed` as the float models."""

    def __init__(self, graph: nn.Module, embedding_dim: int, channels_last: bool = False):
        super().__init__()
        self.graph = graph
        self.embedding_dim = embedding_dim
        self.channels_last = channels_last

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return torch.nn.functional.normalize(self.graph(images), dim=-1)


def optimise_for_inference(model: Embedder) -> GraphEmbedder:
    """The same arithmetic in fewer, faster kernels: BatchNorm folded into the convolutions (torch.fx)
    and weights and inputs in channels-last layout. Used alike on teacher and student when the
    scoreboard compares their speed."""
    from torch.fx.experimental.optimization import fuse

    folded = fuse(copy.deepcopy(model).eval()).to(memory_format=torch.channels_last)
    return GraphEmbedder(folded, model.embedding_dim, channels_last=True).eval()


def prune_magnitude(model: Embedder, sparsity: float) -> Embedder:
    """A copy with the smallest-magnitude `sparsity` fraction of conv/linear weights (global) set to 0."""
    pruned = copy.deepcopy(model).eval()
    if sparsity <= 0:
        return pruned
    weights = [m.weight for m in pruned.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    magnitudes = torch.cat([w.detach().abs().flatten() for w in weights])
    threshold = torch.kthvalue(magnitudes, max(1, int(sparsity * len(magnitudes)))).values
    with torch.no_grad():
        for weight in weights:
            weight.mul_((weight.abs() > threshold).to(weight.dtype))
    return pruned


def size_on_disk(model: nn.Module, dtype: torch.dtype | None = None) -> int:
    """Bytes of the model's state as a .safetensors file (float tensors cast to dtype), or, for an
    int8 model, as torch's serialised state (what it would take to ship it)."""
    state = model.state_dict()
    if any(v.is_quantized for v in state.values() if isinstance(v, torch.Tensor)):
        buffer = io.BytesIO()
        torch.save(state, buffer)  # size measurement only: never loaded back
        return buffer.tell()
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()
             for k, v in state.items()}
    return len(safetensors_bytes(state))


def mflops(model: nn.Module, image_size: int = 64) -> float:
    """Floating-point operations (2 per multiply-add) of one image's embedding, in millions."""
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model.embed(torch.rand(1, 3, image_size, image_size))
    return counter.get_total_flops() / 1e6


def low_precision_speed_up(model: Embedder, dtype: torch.dtype, image_size: int = 64, batch: int = 32) -> float:
    """How many times faster `model.embed` runs at test time in `dtype` (`Embedder.set_inference_dtype`: autocast,
    channels-last) than in float32 (contiguous), on this machine: torch.utils.benchmark's median over a batch of random
    pictures (without the photo blend: random pictures pass for photos), after a warm-up. The model is left as it
    came."""
    from torch.utils import benchmark

    pictures = torch.rand(batch, 3, image_size, image_size)
    kept, medians = model.inference_dtype, []
    try:
        with torch.inference_mode():
            for candidate in (None, dtype):
                model.set_inference_dtype(candidate)
                model.embed(pictures, blend_photos=False)
                timer = benchmark.Timer(stmt="model.embed(pictures, blend_photos=False)",
                                        globals={"model": model, "pictures": pictures},
                                        num_threads=torch.get_num_threads())
                medians.append(timer.blocked_autorange(min_run_time=0.2).median)
    finally:
        model.set_inference_dtype(kept)
    return medians[0] / medians[1]


def latency_and_throughput(model: nn.Module, image_size: int = 64, repeats: int = 30) -> tuple[float, float]:
    """(median ms per image at batch 1, images/s at batch 64), after warm-up."""
    one, batch = torch.rand(1, 3, image_size, image_size), torch.rand(64, 3, image_size, image_size)
    with torch.inference_mode():
        for _ in range(3):
            model.embed(one), model.embed(batch)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            model.embed(one)
            times.append(time.perf_counter() - started)
        batch_times = []
        for _ in range(max(3, repeats // 2)):
            started = time.perf_counter()
            model.embed(batch)
            batch_times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times), 64 / statistics.median(batch_times)
