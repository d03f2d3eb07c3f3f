"""pokedemo.compress: pruning, the inference rewrite, and the measurements behind the scoreboard."""
import pytest
import torch
from torch import nn

from pokedemo.compress import mflops, optimise_for_inference, prune_magnitude
from pokedemo.models import Embedder, build_model


def test_pruning_zeroes_the_requested_fraction_and_leaves_the_original_alone():
    torch.manual_seed(0)
    model = build_model("student").eval()
    pruned = prune_magnitude(model, 0.5)
    weights = [m.weight for m in pruned.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert zeros == pytest.approx(0.5, abs=0.01)
    assert all((m.weight != 0).all() for m in model.modules() if isinstance(m, nn.Conv2d))


def test_flops_grow_with_the_model():
    assert mflops(build_model("student")) < mflops(build_model("teacher", n_classes=4)) / 10


@pytest.mark.parametrize("architecture", ["student", "teacher"])
def test_inference_rewrite_folds_batchnorm_and_keeps_the_embeddings(architecture):
    torch.manual_seed(0)
    model = build_model(architecture, **({"n_classes": 4} if architecture == "teacher" else {})).eval()
    for module in model.modules():          # non-trivial statistics, so folding them is really checked
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
    fast = optimise_for_inference(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    batch = torch.rand(8, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(fast.embed(batch), model.embed(batch), atol=1e-4)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())   # the original is untouched


def test_the_low_precision_speed_up_is_measured_against_float32_and_leaves_the_model_as_it_came():
    from pokedemo.compress import low_precision_speed_up

    torch.manual_seed(0)
    model = build_model("student").eval()
    assert model.inference_dtype is None
    timed = []
    model.embed = lambda images, **kwargs: timed.append(model.inference_dtype) or Embedder.embed(model, images, **kwargs)
    speed_up = low_precision_speed_up(model, torch.bfloat16, batch=4)
    assert speed_up > 0 and None in timed and torch.bfloat16 in timed            # both arithmetics were timed
    assert model.inference_dtype is None
    assert model.body[0].weight.is_contiguous()                                  # its layout restored too
    model.set_inference_dtype(torch.bfloat16)
    low_precision_speed_up(model, torch.bfloat16, batch=4)
    assert model.inference_dtype is torch.bfloat16
    assert model.body[0].weight.is_contiguous(memory_format=torch.channels_last)
