"""The segmenter: its shape, its training run, the trained checkpoint on real sprites rendered as photos, what its
cut-out does with a mask, and the photo blend a card may switch on with it (`PhotoBlend`)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from pokedemo import segment
from pokedemo.images import content_box, is_photo, load_image, to_model_image, to_model_rgba
from pokedemo.render import make_backgrounds

GALLERY = Path(__file__).resolve().parent.parent / "assets" / "gallery"
KEPT = Path(__file__).resolve().parent.parent / "docs" / "results" / "segmenter"   # every segmenter trained


def gallery_sprites(count: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Real sprites (the gallery's front pictures), as the dataset stores them: rgb over white and alpha."""
    files = sorted(GALLERY.glob("*-front-0.png"))[:count]
    pairs = [to_model_rgba(load_image(f), 64) for f in files]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def photos_with_masks(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    images, alpha = gallery_sprites()
    bank = make_backgrounds("test", 64, 80, seed)        # backgrounds the segmenter never trained on
    return segment.rendered_batch(images, alpha, bank, torch.Generator().manual_seed(seed))


def test_the_segmenter_maps_a_picture_to_a_mask_of_its_size_and_is_small():
    model = segment.Segmenter().eval()
    for side in (64, 40):
        assert model(torch.rand(2, 3, side, side)).shape == (2, 1, side, side)
    card = json.loads(segment.SEGMENTER.with_suffix(".json").read_text())
    assert card["parameters"] == sum(t.numel() for t in segment.load_segmenter().state_dict().values()
                                     if t.is_floating_point()) < 100_000


def test_the_loss_prefers_the_true_mask():
    target = torch.zeros(2, 1, 16, 16)
    target[:, :, 4:12, 4:12] = 1
    right, wrong = segment.mask_loss(target * 20 - 10, target), segment.mask_loss(10 - target * 20, target)
    assert right < 0.05 < 1 < wrong
    assert segment.iou(target, target).tolist() == [1.0, 1.0] and segment.iou(1 - target, target).tolist() == [0, 0]


def test_the_trained_segmenter_finds_real_sprites_on_unseen_backgrounds_and_an_untrained_one_does_not():
    pictures, masks = photos_with_masks()
    with torch.inference_mode():
        trained = segment.iou(segment.load_segmenter()(pictures).sigmoid(), masks).mean()
        torch.manual_seed(0)
        untrained = segment.iou(segment.Segmenter().eval()(pictures).sigmoid(), masks).mean()
    assert trained > 0.6 and untrained < 0.4


def test_a_photo_of_a_sprite_comes_out_over_white_cropped_to_the_sprite():
    pictures, _ = photos_with_masks(seed=1)
    pixels = pictures.mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    photos = np.stack([to_model_image(Image.fromarray(p), 64) for p in pixels if is_photo(Image.fromarray(p))])
    assert len(photos) >= len(pixels) // 2
    cut = segment.cut_out(photos, segment.load_segmenter(KEPT / "segmenter-w24.safetensors"))   # the finest masks
    over_white = [c for c in cut if not is_photo(Image.fromarray(c))]    # a sprite now, not a photo
    assert len(over_white) >= 0.8 * len(cut)
    for picture in over_white:                                             # the sprite fills the frame, as in training
        box = content_box(np.dstack([picture, np.full(picture.shape[:2], 255, np.uint8)]))
        assert box is not None and max(box[2] - box[0], box[3] - box[1]) >= 60


def test_rough_cut_outs_are_seeded_sprites_over_white_that_a_segmenter_could_have_made():
    pictures, masks = photos_with_masks(seed=2)
    out, cut, rough = segment.rough_cut_outs(pictures, masks, torch.Generator().manual_seed(5))
    again, cut_again, _ = segment.rough_cut_outs(pictures, masks, torch.Generator().manual_seed(5))
    other, _, _ = segment.rough_cut_outs(pictures, masks, torch.Generator().manual_seed(6))
    assert torch.equal(out, again) and torch.equal(cut, cut_again) and not torch.equal(out, other)
    assert out.shape == pictures.shape and cut.sum() >= 0.8 * len(cut)
    assert torch.equal(out[~cut], pictures[~cut])                         # not cut: the photo as it was
    for picture in out[cut].mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy():
        assert not is_photo(Image.fromarray(picture))                      # a sprite over white now
        box = content_box(np.dstack([picture, np.full(picture.shape[:2], 255, np.uint8)]))
        assert box is not None and max(box[2] - box[0], box[3] - box[1]) >= 60   # cropped to its content
    # rough as a trained segmenter's masks are (IoU about 0.8 on val), neither exact nor lost
    overlap = segment.iou(rough, masks)
    assert 0.6 < overlap.mean() < 0.95 and overlap.min() < 0.9 and overlap.max() > 0.75
    # no sprite: mostly no plausible mask (a false blob now and then, as a segmenter's), and those left as they were
    empty, some_cut, _ = segment.rough_cut_outs(pictures, torch.zeros_like(masks), torch.Generator().manual_seed(0))
    assert some_cut.float().mean() < 0.5 and torch.equal(empty[~some_cut], pictures[~some_cut])


def test_training_views_cut_their_photo_like_views_out_again_when_asked():
    from pokedemo.models import to_tensor
    from pokedemo.train import TrainConfig, training_views

    images, alpha = gallery_sprites(16)
    images, alpha = to_tensor(images), torch.from_numpy(alpha).float()[:, None] / 255
    bank = make_backgrounds("train", 16, 80, 0)

    def views(config: TrainConfig) -> torch.Tensor:
        return training_views(images, alpha, config, bank, torch.Generator().manual_seed(1))

    def photos(config: TrainConfig) -> np.ndarray:
        pixels = views(config).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        return np.array([is_photo(Image.fromarray(p)) for p in pixels])

    assert photos(TrainConfig(render_p=1.0)).mean() >= 0.8
    assert photos(TrainConfig(render_p=1.0, cut_p=1.0)).mean() <= 0.2
    # only the photo-like views are cut: the others are the same draws with cut_p or without
    from pokedemo.augment import augment

    generator = torch.Generator().manual_seed(1)
    augment(images, generator=generator)                                   # what training_views draws first
    chosen = torch.rand(len(images), generator=generator) < 0.5            # then which views are photo-like
    plain, cut = views(TrainConfig(render_p=0.5)), views(TrainConfig(render_p=0.5, cut_p=1.0))
    assert 0 < chosen.sum() < len(chosen)
    assert torch.equal(plain[~chosen], cut[~chosen])
    assert all(not torch.equal(a, b) for a, b in zip(plain[chosen], cut[chosen]))


def test_without_a_plausible_sprite_a_photo_is_left_as_it_was():
    wall = np.zeros((1, 64, 64, 3), dtype=np.uint8)
    wall[:] = (30, 90, 160)                                                # a plain wall: nothing to cut out
    model = segment.load_segmenter()
    assert not segment.plausible(segment.sprite_masks(wall, model)[0])
    assert np.array_equal(segment.cut_out(wall, model), wall)
    assert segment.plausible(np.pad(np.full((32, 32), 255, np.uint8), 16))
    assert not segment.plausible(np.full((64, 64), 255, np.uint8))
    assert not segment.plausible(np.zeros((64, 64), np.uint8))


def test_a_stopped_run_resumes_to_the_same_weights_and_refuses_other_arguments(tmp_path, monkeypatch, capsys):
    images, alpha = gallery_sprites(8)
    splits = ((images, alpha), (images[:4], alpha[:4]))

    def run(name: str, *more: str) -> int:
        return segment.main(["train", "--batch-size", "4", "--run-dir", str(tmp_path / name), "--out",
                             str(tmp_path / f"{name}.safetensors"), "--widths", "4", "4", "8", "8", "--threads", "1",
                             "--bank", "10", "--epochs", "2", *more], splits)

    assert run("whole") == 0
    evaluate, calls = segment.evaluate, []

    def stop_in_the_second_epoch(*arguments):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return evaluate(*arguments)

    monkeypatch.setattr(segment, "evaluate", stop_in_the_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        run("stopped")
    monkeypatch.setattr(segment, "evaluate", evaluate)
    assert run("stopped", "--resume") == 0
    assert "resumed the segmenter after epoch 1" in capsys.readouterr().out
    whole, resumed = (load_file(str(tmp_path / n / "last.safetensors")) for n in ("whole", "stopped"))
    assert whole.keys() == resumed.keys() and any(k.startswith("optim.") for k in whole)
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)      # the last epoch's weights and optimiser alike
    card = json.loads((tmp_path / "stopped.json").read_text())
    assert [row["epoch"] for row in card["log"]] == [1, 2] and card["training"]["epochs"] == 2
    assert segment.load_segmenter(tmp_path / "stopped.safetensors").widths == [4, 4, 8, 8]
    with pytest.raises(SystemExit, match="its own arguments|run's own arguments"):
        run("stopped", "--resume", "--lr", "0.01")
    with pytest.raises(ValueError, match="only .safetensors"):
        segment.load_segmenter(tmp_path / "stopped.json")


def tiny_student(seed: int):
    from pokedemo.models import build_model

    torch.manual_seed(seed)
    return build_model("student", widths=[8, 16, 24], strides=[2, 2], patch=4).eval()


def test_a_mask_head_trains_on_its_frozen_student_and_saves_only_itself(tmp_path):
    from pokedemo.checkpoint import save_checkpoint

    student = tiny_student(0)
    head = segment.MaskHead(student, 4, 4)
    assert head.taps == [2, 3, 4]                                # the last map at each of the sides 16, 8 and 4
    from pokedemo.models import build_model                      # a student with two sides: both, unless told
    two_sides = build_model("student", widths=[8, 16, 24, 24], strides=[2, 1, 1], patch=4).eval()
    assert segment.MaskHead(two_sides, 4, 4).arguments["levels"] == [0, 1]
    for levels in ((0, 3), (1, 1), ()):
        with pytest.raises(ValueError, match="levels are distinct"):
            segment.MaskHead(student, 4, 4, levels)
    with pytest.raises(ValueError, match="reads a student's maps"):
        segment.MaskHead(segment.Segmenter(), 4, 4)
    frozen = {k: v.clone() for k, v in student.state_dict().items()}
    head.train()
    segment.mask_loss(head(torch.rand(4, 3, 64, 64)), torch.rand(4, 1, 64, 64).round()).backward()
    assert all(p.grad is None for p in head.backbone.parameters()) and all(p.grad is not None for p in head.parameters())
    assert all(torch.equal(v, student.state_dict()[k]) for k, v in frozen.items())       # BatchNorm statistics too
    assert all(torch.equal(v, head.backbone.state_dict()[k[5:]]) for k, v in frozen.items() if k.startswith("body."))

    images, alpha = gallery_sprites(8)
    backbone = save_checkpoint(student, tmp_path / "student.safetensors", {"architecture": "student",
                                                                           "arguments": student.arguments})
    out = tmp_path / "heads" / "head.safetensors"
    assert segment.main(["train", "--backbone", str(backbone), "--head", "4", "4", "--levels", "1", "2",
                         "--batch-size", "4", "--bank", "10", "--epochs", "1", "--threads", "1",
                         "--run-dir", str(tmp_path / "run"), "--out", str(out)], ((images, alpha), (images[:4], alpha[:4]))) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["architecture"] == "mask-head" and card["backbone"]["file"] == "../student.safetensors"
    saved = load_file(str(out))
    assert set(saved) == set(segment.MaskHead(student, 4, 4, (1, 2)).state_dict())        # the head alone
    assert not any(k.startswith(("backbone", "body")) for k in saved)
    assert card["parameters"] == sum(v.numel() for v in saved.values() if v.is_floating_point()) < 1000
    loaded = segment.load_segmenter(out)
    assert loaded.taps == [3, 4] and not loaded.training
    best = segment.load_segmenter(tmp_path / "run" / "best.safetensors")     # the run's own copy finds it too
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in best.state_dict().items())
    with torch.inference_mode():
        assert loaded(torch.rand(2, 3, 64, 64)).shape == (2, 1, 64, 64)
    save_checkpoint(tiny_student(1), backbone, {"architecture": "student", "arguments": student.arguments})
    with pytest.raises(ValueError, match="another student.safetensors"):     # its maps are another student's
        segment.load_segmenter(out)
    backbone.unlink()
    with pytest.raises(FileNotFoundError, match="student.safetensors is missing"):
        segment.load_segmenter(out)


@pytest.mark.parametrize("path", [KEPT / "segmenter-w8.safetensors", KEPT / "segmenter-w16.safetensors",
                                  KEPT / "segmenter-w24.safetensors", segment.SEGMENTER],
                         ids=["w8", "w16", "w24", "shipped"])
def test_each_kept_segmenter_is_its_best_val_epoch(path):
    card = json.loads(path.with_suffix(".json").read_text())
    best = max(card["log"], key=lambda row: row["val_iou"])              # the first of equals, as training keeps
    assert (card["epoch"], card["val_iou"]) == (best["epoch"], best["val_iou"])
    model = segment.load_segmenter(path)
    assert card["parameters"] == sum(t.numel() for t in model.state_dict().values() if t.is_floating_point())


def test_a_checkpoint_of_another_kind_is_not_taken_for_a_segmenter(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(segment.SEGMENTER.read_bytes())
    path.with_suffix(".json").write_text(json.dumps({"architecture": "student", "arguments": {}}))
    with pytest.raises(ValueError, match="not a segmenter"):
        segment.load_segmenter(path)


def test_a_card_with_a_photo_blend_embeds_photos_with_their_cut_out_and_sprites_as_before(tmp_path):
    import copy

    import torch.nn.functional as F

    from pokedemo.checkpoint import checkpoint_identity, load_checkpoint
    from pokedemo.models import count_parameters, to_tensor
    from pokedemo.tracks import embed_views
    from tests.conftest import student_with_card

    path, plain, before = student_with_card(tmp_path, {"photo_blend": {"segmenter": "seg.safetensors",
                                                                        "weight": 0.3}})
    with pytest.raises(FileNotFoundError, match="seg.safetensors"):        # the segmenter must lie beside it
        load_checkpoint(path)
    for suffix in (".safetensors", ".json"):
        (tmp_path / f"seg{suffix}").write_bytes(segment.SEGMENTER.with_suffix(suffix).read_bytes())
    backbone = json.loads(segment.SEGMENTER.with_suffix(".json").read_text()).get("backbone")
    if backbone:                                  # a mask head reads the shipped student's maps: that file beside it
        for suffix in (".safetensors", ".json"):
            name = Path(backbone["file"]).with_suffix(suffix)
            (tmp_path / name).write_bytes((segment.SEGMENTER.parent / name).read_bytes())
    blended, _ = load_checkpoint(path)
    assert checkpoint_identity(path) != before                           # the gallery's stored embeddings are stale
    sprites, _ = gallery_sprites(6)
    photos = (photos_with_masks()[0][:6] * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    photos = np.stack([to_model_image(Image.fromarray(p)) for p in photos])
    assert all(is_photo(Image.fromarray(p)) for p in photos) and not any(is_photo(Image.fromarray(s)) for s in sprites)
    with torch.inference_mode():
        # sprites on white: as without it; training steps (test_time=False): as without it
        assert torch.equal(blended.embed(to_tensor(sprites)), plain.embed(to_tensor(sprites)))
        assert torch.equal(blended.embed(to_tensor(photos), test_time=False), plain.embed(to_tensor(photos)))
        cut = segment.cut_out(photos, segment.load_segmenter())
        changed = np.flatnonzero((cut != photos).any(axis=(1, 2, 3)))
        assert len(changed) >= 3
        expected = plain.embed(to_tensor(photos))
        expected[changed] = F.normalize(expected[changed] + 0.3 * plain.embed(to_tensor(cut[changed])), dim=-1)
        assert torch.allclose(blended.embed(to_tensor(photos)), expected, atol=1e-6)
        # a mixed batch: each picture as alone
        mixed = np.concatenate([sprites[:2], photos[:2]])
        assert torch.allclose(blended.embed(to_tensor(mixed)), torch.cat([plain.embed(to_tensor(sprites[:2])),
                                                                          expected[:2]]), atol=1e-6)
        # the supports' photo-like views are embedded without it (`tracks.embed_views`)
        views = to_tensor(photos).unflatten(0, (2, 3))
        assert torch.equal(embed_views(blended, views), embed_views(plain, views))
        assert not torch.allclose(blended.embed(views.flatten(0, 1)), plain.embed(views.flatten(0, 1)))
    tuned = copy.deepcopy(blended)           # a visitor's fine-tuned copy shares the read-only segmenter
    assert tuned.photo_blend is blended.photo_blend
    assert count_parameters(tuned) == count_parameters(plain) and set(tuned.state_dict()) == set(plain.state_dict())
