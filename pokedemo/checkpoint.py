"""The one way to save and load a model: weights in .safetensors (never a pickle) plus a JSON card
beside it (architecture and arguments, input size, normalisation, species, data hash, command,
training time, parameter count, measured scores)."""
from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import compress
from .models import Embedder, build_model


def card_path(weights: Path) -> Path:
    return Path(weights).with_suffix(".json")


def save_checkpoint(model: Embedder, path: Path, card: dict, half: bool = False) -> Path:
    """Write path (.safetensors) and its card (.json). `card` must hold "architecture" and "arguments"."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"checkpoints are .safetensors files, got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in model.state_dict().items()}
    save_file(state, str(path))
    card = {**card, "dtype": "float16" if half else "float32", "bytes_on_disk": path.stat().st_size}
    card_path(path).write_text(json.dumps(card, indent=1))
    return path


def checkpoint_identity(*paths: Path) -> str:
    """The SHA-256 of these checkpoints' weights files, together with how each embeds when its card says
    more than the weights do (`flip_average`, `photo_blend` with its segmenter's weights): what was computed
    with them (the gallery's embeddings) names them by it."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
        card = read_card(path)
        if card.get("flip_average"):
            digest.update(b"flip_average")
        if card.get("inference_dtype"):
            digest.update(card["inference_dtype"].encode())
        if card.get("photo_blend"):
            digest.update(json.dumps(card["photo_blend"], sort_keys=True).encode())
            digest.update((Path(path).parent / card["photo_blend"]["segmenter"]).read_bytes())
    return digest.hexdigest()


def read_card(path: Path) -> dict:
    card_file = card_path(path)
    if not card_file.exists():
        raise FileNotFoundError(f"{card_file} is missing: a checkpoint is a .safetensors file plus its .json card")
    return json.loads(card_file.read_text())


def record_scores(path: Path, scores: dict, command: str) -> None:
    """Merge benchmark figures into the card's `scores` and note the command that measured them."""
    card = read_card(path)
    card["scores"] = {**card.get("scores", {}), **scores}
    card["scores_command"] = command
    card_path(path).write_text(json.dumps(card, indent=1))


def record_card(path: Path, fields: dict, command: str) -> None:
    """Merge top-level fields into a card, noting the command that made each."""
    card = read_card(path)
    card.update(fields)
    card.setdefault("commands", {}).update({key: command for key in fields})
    card_path(path).write_text(json.dumps(card, indent=1))


def load_checkpoint(path: Path | str, device: str = "cpu", extras: bool = True) -> tuple[Embedder, dict]:
    """Build the model its card describes and load its weights, as float32, in eval mode; the card's
    test-time extras (`Embedder.embed`) are set on the model: `flip_average` (mirror averaging) and
    `photo_blend` (photos blended with their cut-out, `segment.PhotoBlend`, its segmenter beside the checkpoint).
    extras=False sets neither (the weights alone: what a `segment.MaskHead` reads).

    Only .safetensors files are read; a pickle, a tampered or a mismatched file is refused with a
    ValueError that says what to do.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"refusing to load {path.name}: only .safetensors checkpoints are loaded (never pickles)")
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: train it (see README) or restore it with git")
    card = read_card(path)
    try:
        state = load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{path.name} is not a valid safetensors file ({error}); restore it with git or retrain") from None
    model = build_model(card["architecture"], **card.get("arguments", {}))
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
    except RuntimeError as error:
        raise ValueError(f"{path.name} does not match its card's architecture '{card['architecture']}': "
                         f"{str(error)[:300]}") from None
    model.flip_average = extras and bool(card.get("flip_average", False))
    if extras and card.get("photo_blend"):
        from .segment import PhotoBlend   # the segmenter's module loads its own checkpoints with this one's helpers

        model.photo_blend = PhotoBlend.from_card(card["photo_blend"], path.parent)
    model = model.to(device).eval()
    if extras and card.get("inference_dtype"):
        model.set_inference_dtype(_inference_dtype(model, card, path))
    return model, card


INFERENCE_DTYPES = {"bfloat16": torch.bfloat16}
_SPEED_UP_NEEDED = 1.2
_faster: dict[str, bool] = {}     # per process: whether the card's dtype is faster here, measured once per network
_faster_lock = threading.Lock()   # two threads loading at once measure once, not against each other


def _inference_dtype(model: Embedder, card: dict, path: Path) -> torch.dtype | None:
    """The card's `inference_dtype` (chosen on the val species, where it scores as float32 does), used where
    it makes the model at least 1.2x faster on this machine (measured once: `compress.low_precision_speed_up`;
    a CPU without native bfloat16 kernels runs it slower). $POKEDEMO_INFERENCE_DTYPE=float32 or =bfloat16
    decides instead of the measurement (to reproduce a figure made on another machine)."""
    name = card["inference_dtype"]
    if name not in INFERENCE_DTYPES:
        raise ValueError(f"{path.name}'s card asks for inference_dtype {name!r}: known are {sorted(INFERENCE_DTYPES)}")
    wanted = os.environ.get("POKEDEMO_INFERENCE_DTYPE", "auto")
    if wanted not in ("auto", "float32", *INFERENCE_DTYPES):
        raise ValueError(f"POKEDEMO_INFERENCE_DTYPE={wanted!r}: use auto, float32 or one of {sorted(INFERENCE_DTYPES)}")
    if wanted != "auto":
        return INFERENCE_DTYPES.get(wanted)
    dtype = INFERENCE_DTYPES[name]
    device = next(model.parameters()).device
    key = json.dumps([card["architecture"], card.get("arguments", {}), name, str(device)], sort_keys=True)
    with _faster_lock:
        if key not in _faster:
            speed_up = compress.low_precision_speed_up(model, dtype, image_size=card.get("input_size", 64))
            _faster[key] = speed_up >= _SPEED_UP_NEEDED
        return dtype if _faster[key] else None


def base_mean(card: dict) -> torch.Tensor | None:
    """The mean base-species embedding stored in the card (for SimpleShot centring), if any."""
    return torch.tensor(card["base_mean"]) if card.get("base_mean") else None
