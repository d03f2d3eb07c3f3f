"""pokedemo.render and pokedemo.tracks: the seeded photo-like renderer and the robustness tracks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pokedemo.config import EpisodeConfig
from pokedemo.data import EpisodeSampler
from pokedemo.render import EXTRA_TRAIN_PHOTOS, PHOTOS, RenderConfig, composite, make_backgrounds, photo_paths, render
from pokedemo.tracks import TrackImages, render_pictures, track_accuracies


def _sprites(n=6, size=32):
    """Red discs on a transparent canvas: images over white (N, 3, S, S) and alpha (N, 1, S, S)."""
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disc = (((ys - size / 2) ** 2 + (xs - size / 2) ** 2) < (size / 3) ** 2).float()
    alpha = disc.expand(n, 1, size, size).clone()
    red = torch.tensor([0.9, 0.1, 0.1]).view(1, 3, 1, 1)
    return red * alpha + (1 - alpha), alpha


def test_the_same_seed_gives_the_same_pictures_and_another_seed_others():
    images, alpha = _sprites()
    bank = make_backgrounds("test", 8, 40)
    first = render(images, alpha, bank, torch.Generator().manual_seed(1))
    again = render(images, alpha, make_backgrounds("test", 8, 40), torch.Generator().manual_seed(1))
    other = render(images, alpha, bank, torch.Generator().manual_seed(2))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.shape == images.shape and first.min() >= 0 and first.max() <= 1


def test_compositing_honours_alpha_exactly():
    images, alpha = _sprites(2)
    ground = torch.full_like(images, 0.25)
    out = composite(images, alpha, ground)
    assert torch.allclose(out[alpha.expand_as(out) == 0], torch.tensor(0.25))
    assert torch.allclose(out[alpha.expand_as(out) == 1], images[alpha.expand_as(images) == 1])


def test_with_every_corruption_off_the_sprite_keeps_its_colour_and_the_background_shows_around_it():
    images, alpha = _sprites(4)
    still = RenderConfig(scale=(1.0, 1.0), shift=0.0, rotate_degrees=0, perspective=0, flip=0, light=0,
                         exposure=(1, 1), cast=0, blur_p=0, downscale_p=0, noise_p=0, jpeg_p=0)
    ground = torch.zeros(1, 3, 32, 32)                 # a black bank: any background pixel is black
    out = render(images, alpha, ground, torch.Generator().manual_seed(0), still)
    centre, corner = out[:, :, 16, 16], out[:, :, 0, 0]
    assert torch.allclose(centre, torch.tensor([0.9, 0.1, 0.1]).expand_as(centre), atol=0.02)
    assert torch.allclose(corner, torch.zeros_like(corner), atol=0.02)


def test_with_mask_the_renderer_says_where_the_sprite_lies_and_draws_the_same_picture():
    images, alpha = _sprites(4)
    bank = make_backgrounds("test", 8, 40)
    plain = render(images, alpha, bank, torch.Generator().manual_seed(3))
    pictures, mask = render(images, alpha, bank, torch.Generator().manual_seed(3), with_mask=True)
    assert torch.equal(plain, pictures) and mask.shape == (4, 1, 32, 32)
    still = RenderConfig(scale=(1.0, 1.0), shift=0.0, rotate_degrees=0, perspective=0, flip=0)
    _, unmoved = render(images, alpha, bank, torch.Generator().manual_seed(0), still, with_mask=True)
    assert (unmoved - alpha).abs().mean() < 0.03                # no pose: the sprite's own alpha (up to its edge)
    assert (mask - alpha).abs().mean() > 0.1                     # posed: the mask moves with the sprite


def test_pools_use_disjoint_photographs_and_different_backgrounds():
    photos = {pool: set(files) for pool, files in PHOTOS.items()}
    assert not (photos["train"] & photos["test"] or photos["train"] & photos["val"] or photos["val"] & photos["test"])
    train, test = make_backgrounds("train", 8, 24), make_backgrounds("test", 8, 24)
    assert not any(torch.allclose(a, b) for a in train for b in test)
    with pytest.raises(ValueError, match="pool"):
        make_backgrounds("novel", 4, 24)


def test_the_extra_photographs_are_the_training_banks_alone_and_change_only_its_photo_crops():
    extra = set(EXTRA_TRAIN_PHOTOS)
    assert not extra & {photo for files in PHOTOS.values() for photo in files}
    assert len(photo_paths("train", extra=True)) == len(PHOTOS["train"]) + len(extra)
    classic = make_backgrounds("train", 64, 24, seed=2)
    more = make_backgrounds("train", 64, 24, seed=2, extra_photos=True)
    kinds = torch.arange(64) % 4
    assert torch.equal(classic[kinds == 0], more[kinds == 0])          # the solid colours are drawn as before
    assert not torch.equal(classic[kinds == 3], more[kinds == 3])      # some crops now come from other photographs
    for pool in ("val", "test"):
        with pytest.raises(ValueError, match="training only"):
            make_backgrounds(pool, 4, 24, extra_photos=True)


def _track_images(n_species=6, sources=5, frames=3, size=24):
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 200, (n_species, 3))
    images, species, source, is_art = [], [], [], []
    for s in range(n_species):
        for k in range(sources):
            for _ in range(1 if k == sources - 1 else frames):   # the last source of a species is its art
                image = np.full((size, size, 3), 255, dtype=np.uint8)
                image[4:20, 4:20] = colours[s]
                images.append(image), species.append(s), source.append(s * sources + k)
                is_art.append(k == sources - 1)
    images = np.stack(images)
    alpha = np.where((images != 255).any(-1), 255, 0).astype(np.uint8)
    return TrackImages(images, alpha, np.asarray(species), np.asarray(source), np.asarray(is_art))


def test_the_art_track_takes_supports_from_sprites_and_queries_from_art_only():
    data = _track_images()
    sampler = EpisodeSampler(data.species, data.source, EpisodeConfig(5, 2, 1, 30), query_only=data.is_art)
    for support, query, _ in sampler:
        assert not data.is_art[support].any() and data.is_art[query].all()


def test_tracks_score_a_colour_embedding_and_rendering_is_deterministic():
    data = _track_images()
    embed = lambda images: torch.nn.functional.normalize(torch.from_numpy(images.reshape(len(images), -1)).float(), dim=-1)
    clean = track_accuracies(embed, data, "clean", 1, 20, n_query=3)
    assert np.mean(clean) == 1.0                                      # colours tell the species apart
    assert np.mean(track_accuracies(embed, data, "art", 1, 20)) == 1.0
    photo = track_accuracies(embed, data, "photo", 1, 20, n_query=3)
    assert np.mean(photo) < 1.0                                        # raw pixels do not survive a photo
    assert np.array_equal(render_pictures(data.images, data.alpha, "test", 3),
                          render_pictures(data.images, data.alpha, "test", 3))
    with pytest.raises(ValueError, match="unknown track"):
        track_accuracies(embed, data, "sketch", 1, 5)


def test_dead_leaves_are_a_seeded_fifth_kind_of_the_training_bank_only():
    classic, leaves = make_backgrounds("train", 10, 24, seed=3), make_backgrounds("train", 10, 24, seed=3, leaves=True)
    assert torch.equal(leaves, make_backgrounds("train", 10, 24, seed=3, leaves=True))
    assert not torch.equal(leaves, make_backgrounds("train", 10, 24, seed=4, leaves=True))
    assert leaves.shape == classic.shape and 0 <= leaves.min() and leaves.max() <= 1
    for picture in leaves[4::5]:                      # every fifth: many overlapping shapes, many colours
        assert len(torch.unique(picture.reshape(3, -1), dim=1).T) >= 8
    for pool in ("val", "test"):                      # the benchmark's and model selection's pools never draw them
        with pytest.raises(ValueError, match="training only"):
            make_backgrounds(pool, 5, 24, leaves=True)


def test_recoloured_photo_crops_keep_the_scene_in_other_colours_in_the_training_bank_only():
    classic, recoloured = make_backgrounds("train", 8, 32, seed=5), make_backgrounds("train", 8, 32, seed=5, recolour=True)
    assert torch.equal(recoloured, make_backgrounds("train", 8, 32, seed=5, recolour=True))
    assert torch.equal(classic[:3], recoloured[:3])   # solid, gradient, texture: drawn before any recolouring
    before, after = classic[3], recoloured[3]         # the first photo crop: the same scene, other colours
    assert (before - after).abs().mean() > 0.02 and 0 <= after.min() and after.max() <= 1
    assert torch.corrcoef(torch.stack([before.mean(0).flatten(), after.mean(0).flatten()]))[0, 1] > 0.8
    for pool in ("val", "test"):
        with pytest.raises(ValueError, match="training only"):
            make_backgrounds(pool, 5, 24, recolour=True)


def test_photo_tasks_of_any_seed_read_the_banks_made_ahead_and_make_no_more():
    from pokedemo import tracks
    from pokedemo.task import Picture, make_photo_banks, photo_like

    discs, masks = _sprites(3, 64)
    images = discs.mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    alpha = masks[:, 0].mul(255).round().to(torch.uint8).numpy()
    make_photo_banks(images.shape[1])
    made = tracks._bank.cache_info().misses
    pictures = [Picture(image, f"s{k}") for k, image in enumerate(images)]
    shown = {seed: photo_like(pictures, list(alpha), seed) for seed in (1, 2, 77)}    # the page's task seeds
    tracks.support_views(images, alpha)                                                 # a photo task's views
    assert tracks._bank.cache_info().misses == made
    assert all("photo-like" in p.source for p in shown[1])
    assert not np.array_equal(shown[1][0].image, shown[2][0].image)                    # each seed its own pictures
    assert np.array_equal(photo_like(pictures, list(alpha), 77)[0].image, shown[77][0].image)
