"""Training data behind one interface: the sprites (base / val species), CIFAR-10 (the source
report's protocol, 28x28) or any ImageFolder, plus unlabeled images for distillation."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..config import DataConfig, data_dir
from ..images import decode_image, to_model_image
from .dataset import SpriteDataset, split_species

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"}


@dataclass
class TrainData:
    """images: (N, S, S, 3) uint8; alpha: (N, S, S) uint8 (all 255 for opaque pictures); labels: (N,)
    0..n_classes-1. Validation arrays have a source per image so episodes can stay source-disjoint,
    and `val_art` marks the val pictures that are dream-world art (None: no art track).
    `classes`: the original class ids / names."""

    images: np.ndarray
    labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    val_sources: np.ndarray
    classes: list
    data_hash: str
    image_size: int
    alpha: np.ndarray | None = None
    val_alpha: np.ndarray | None = None
    val_art: np.ndarray | None = None
    files: list[Path] | None = None     # streamed data: the training images' files (images is then None)

    def __post_init__(self):
        opaque = lambda images: np.full(images.shape[:3], 255, dtype=np.uint8)
        if self.images is not None:
            self.alpha = opaque(self.images) if self.alpha is None else self.alpha
        self.val_alpha = opaque(self.val_images) if self.val_alpha is None else self.val_alpha

    def dataset(self):
        """The training images as a Dataset: streamed from their files, or the arrays in memory."""
        from .stream import ArrayImages, FolderImages

        if self.files is not None:
            return FolderImages(self.files, self.labels, self.image_size)
        return ArrayImages(self.images, self.alpha, self.labels)


def _held_out(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N,) bool: 10% of each class's images (at least 2), held out for model selection."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        indices = np.flatnonzero(labels == label)
        if len(indices) < 3:
            raise ValueError(f"class {label} has {len(indices)} picture(s): each class needs at least 3 (some are "
                             "held out to choose the model)")
        held[rng.choice(indices, min(max(2, len(indices) // 10), len(indices) - 1), replace=False)] = True
    return held


def _holdout(images: np.ndarray, labels: np.ndarray, classes: list, data_hash: str, seed: int = 0) -> TrainData:
    """For data without held-out classes: every class trains; 10% of each class's images are held out
    for model selection (each image its own source)."""
    held = _held_out(labels, seed)
    return TrainData(images[~held], labels[~held], images[held], labels[held], np.flatnonzero(held),
                     classes, data_hash, images.shape[1])


def sprite_data(config: DataConfig = DataConfig(), root: Path | None = None) -> TrainData:
    """Base species train; val species select. Novel (Gen I) species are never loaded here."""
    dataset = SpriteDataset.load(config, root)
    splits = split_species(config)
    base, val = dataset.subset(splits["base"]), dataset.subset(splits["val"])
    classes = sorted(np.unique(base.species).tolist())
    lookup = {species: index for index, species in enumerate(classes)}
    is_art = np.asarray([kind.startswith("art") for kind in dataset.source_kind])
    return TrainData(base.images, np.asarray([lookup[s] for s in base.species]), val.images, val.species, val.source,
                     classes, dataset.manifest["tarball_sha512"], config.image_size, base.alpha, val.alpha,
                     is_art[val.source])


def image_files(folder: Path) -> list[Path]:
    """Every image file under folder (by suffix), sorted; nothing is read."""
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images under {folder}")
    return files


def folder_images(folder: Path | list[Path], image_size: int) -> tuple[np.ndarray, list[Path]]:
    """Every readable image under folder (or of a list of files), preprocessed; unreadable files are skipped
    with a message."""
    files = image_files(folder) if isinstance(folder, (str, Path)) else folder
    images, kept = [], []
    for file in tqdm(files, desc=f"reading {len(files)} pictures", unit="img"):
        try:
            images.append(to_model_image(decode_image(file.read_bytes(), str(file)), image_size))
            kept.append(file)
        except ValueError as error:
            print(f"skipped: {error}")
    if not images:
        raise ValueError(f"none of the {len(files)} pictures could be read")
    return np.stack(images), kept


def folder_data(folder: Path, image_size: int = 64) -> TrainData:
    """An ImageFolder (one sub-folder per class), streamed: only the held-out 10% for model selection are
    read here; the training images are read by DataLoader workers while training runs (`TrainData.dataset`)."""
    folder = Path(folder)
    files = [f for f in image_files(folder) if len(f.relative_to(folder).parts) > 1]
    names = sorted({f.relative_to(folder).parts[0] for f in files})
    if len(names) < 2:
        raise ValueError(f"{folder} needs one sub-folder per class (found {len(names)} classes)")
    labels = np.asarray([names.index(f.relative_to(folder).parts[0]) for f in files])
    held = _held_out(labels)
    val_files = [f for f, h in zip(files, held) if h]
    val_images, kept = folder_images(val_files, image_size)
    val_labels = np.asarray([names.index(f.relative_to(folder).parts[0]) for f in kept])
    return TrainData(None, labels[~held], val_images, val_labels, np.arange(len(kept)), names,
                     f"folder:{folder.resolve()}:{len(files)}", image_size,
                     files=[f for f, h in zip(files, held) if not h])


CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar10_data(root: Path | None = None, image_size: int = 28) -> TrainData:
    """CIFAR-10's training set in its *binary* version (cifar-10-batches-bin, no pickle), resized to
    28x28 as in the source report. It must already be in the data folder: nothing is downloaded."""
    folder = Path(root or data_dir()) / "cifar-10-batches-bin"
    files = sorted(folder.glob("data_batch_*.bin"))
    if not files:
        raise FileNotFoundError(f"CIFAR-10 is not in {folder}: download cifar-10-binary.tar.gz from "
                                "https://www.cs.toronto.edu/~kriz/cifar.html and extract it into the data folder")
    records = np.concatenate([np.fromfile(f, dtype=np.uint8).reshape(-1, 1 + 3 * 32 * 32) for f in files])
    labels = records[:, 0].astype(np.int64)
    pixels = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    images = np.stack([np.asarray(Image.fromarray(x).resize((image_size, image_size), Image.Resampling.BILINEAR))
                       for x in pixels])
    present = sorted(np.unique(labels).tolist())
    labels = np.searchsorted(present, labels)
    return _holdout(images, labels, [CIFAR10_CLASSES[k] for k in present], f"cifar10-bin:{len(images)}")


def load_train_data(spec: str, image_size: int = 64) -> TrainData:
    """spec: 'sprites' | 'cifar10' | 'folder:PATH'."""
    if spec == "sprites":
        return sprite_data(DataConfig(image_size=image_size))
    if spec == "cifar10":
        return cifar10_data()
    if spec.startswith("folder:"):
        return folder_data(Path(spec[len("folder:"):]), image_size)
    raise ValueError(f"--data must be sprites, cifar10 or folder:PATH, got '{spec}'")
