"""One place where a picture becomes a model input: validation of untrusted files and the
preprocessing shared by the dataset, the gallery and uploads.

Preprocessing (`to_model_image`): a sprite or a picture on white is cropped to its content and padded
to a white square; a photo is centre-cropped to a square; both are then resized.
"""
from __future__ import annotations

import base64
import io
import os
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_FILE_BYTES = 10 * 1024 * 1024          # 10 MB per upload
MAX_PIXELS = 4096 * 4096                   # 16.7 megapixels, checked from the header before decoding
MIN_SIDE = 8                               # a 1x1 or a 3-pixel-thin strip carries no Pokémon
MAX_ASPECT = 10.0
ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")
LIMITS_TEXT = (f"PNG, JPEG, GIF, WebP or BMP; at most {MAX_FILE_BYTES // (1024 * 1024)} MB and "
               f"{int(MAX_PIXELS ** 0.5)}x{int(MAX_PIXELS ** 0.5)} pixels; at least {MIN_SIDE} pixels a side")

# Pillow's own bomb guard (an error above 2x this) stays as a last resort for absurd headers; below it
# we read the header's size ourselves and refuse anything over MAX_PIXELS before decoding a pixel.
Image.MAX_IMAGE_PIXELS = 64 * MAX_PIXELS


def _first_frame_rgba(image: Image.Image) -> Image.Image:
    """Convert any mode (P, LA, CMYK, I;16, F, ...) to RGBA."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        high = array.max() if array.size else 1.0
        scale = 255.0 / high if high > 255 else 1.0
        image = Image.fromarray(np.clip(array * scale, 0, 255).astype(np.uint8), mode="L")
    return image.convert("RGBA")  # P with transparency, LA, CMYK, L, RGB: Pillow handles each


def load_image(path: str | os.PathLike, name: str | None = None) -> Image.Image:
    """Open an untrusted image file and return its (first) frame as RGBA, EXIF rotation applied.

    Raises ValueError with a message that names the file and says what to do.
    """
    path = Path(path)
    name = name or path.name
    try:
        size = path.stat().st_size
    except OSError:
        raise ValueError(f"'{name}' could not be read: the file is missing. Upload it again.") from None
    if size == 0:
        raise ValueError(f"'{name}' is empty (0 bytes). Upload the picture again.")
    if size > MAX_FILE_BYTES:
        raise ValueError(f"'{name}' is {size / 1e6:.1f} MB; the limit is {MAX_FILE_BYTES // (1024 * 1024)} MB. "
                         "Resize or compress it and try again.")
    data = path.read_bytes()
    return decode_image(data, name)


def decode_image(data: bytes, name: str) -> Image.Image:
    """Decode image bytes (see `load_image`) with size checks before any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image_format = image.format
            width, height = image.size
            if image_format not in ALLOWED_FORMATS:
                raise ValueError(f"'{name}' is a {image_format} file; use {', '.join(ALLOWED_FORMATS)}.")
            if width * height > MAX_PIXELS:
                raise ValueError(f"'{name}' is {width}x{height} pixels; the limit is "
                                 f"{int(MAX_PIXELS ** 0.5)}x{int(MAX_PIXELS ** 0.5)}. Resize it and try again.")
            if min(width, height) < MIN_SIDE or max(width, height) / min(width, height) > MAX_ASPECT:
                raise ValueError(f"'{name}' is {width}x{height} pixels: too small or too thin to show a "
                                 f"Pokémon (at least {MIN_SIDE} pixels a side, at most {MAX_ASPECT:.0f}:1). "
                                 "Use a bigger picture.")
            image.seek(0)  # animated GIF/WebP/PNG: the first frame
            image.load()
            image = ImageOps.exif_transpose(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValueError(f"'{name}' claims to be far larger than the limit of {int(MAX_PIXELS ** 0.5)}x"
                         f"{int(MAX_PIXELS ** 0.5)} pixels (a decompression bomb?). Use a smaller picture.") from None
    except UnidentifiedImageError:
        raise ValueError(f"'{name}' is not a picture we can read. "
                         f"Use {', '.join(ALLOWED_FORMATS)}.") from None
    except (OSError, SyntaxError, EOFError, struct.error) as error:
        raise ValueError(f"'{name}' is damaged or truncated ({error}). Save or export it again.") from None
    return _first_frame_rgba(image)


def content_box(rgba: np.ndarray, threshold: int = 8) -> tuple[int, int, int, int] | None:
    """Bounding box (left, top, right, bottom) of the pixels that are not background.

    rgba: (H, W, 4) uint8, already composited or not; background is transparent or white.
    """
    opaque = rgba[..., 3] > threshold
    not_white = (255 - rgba[..., :3].astype(np.int16)).max(axis=-1) > 3 * threshold
    mask = opaque & not_white
    if not mask.any():
        return None
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def to_model_rgba(image: Image.Image, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Alpha over white, crop to content, pad to a white square, resize; and the alpha mask cut the
    same way (transparent padding), so the sprite can later be put on any background
    (`render.composite`).

    returns: rgb (size, size, 3) uint8 over white, alpha (size, size) uint8 (255 = opaque)
    """
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    flat = Image.alpha_composite(white, rgba)
    mask = rgba.getchannel("A")
    box = content_box(np.asarray(rgba))
    if box is not None:
        flat, mask = flat.crop(box), mask.crop(box)
    side = max(flat.size)
    offset = ((side - flat.size[0]) // 2, (side - flat.size[1]) // 2)
    square = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    square.paste(flat, offset)
    square_mask = Image.new("L", (side, side), 0)
    square_mask.paste(mask, offset)
    rgb = np.asarray(square.convert("RGB").resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)
    alpha = np.asarray(square_mask.resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)
    return rgb, alpha


def white_border_fraction(rgb: np.ndarray, tolerance: int = 16) -> float:
    """Share of the outermost pixels that are (near) white. rgb: (H, W, 3) uint8."""
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    return float(((255 - border.astype(np.int16)).max(axis=-1) <= tolerance).mean())


def is_photo(image: Image.Image) -> bool:
    """An opaque picture whose border is mostly not white: a photo, a screenshot, a scan of a card.

    A sprite has transparency; a sprite saved on white (the gallery, a drawing) has a border that is
    at least 3/4 white; rendered photo-like pictures have at most 1/4 (docs/robustness.md).
    """
    rgba = np.asarray(image.convert("RGBA"))
    return bool(rgba[..., 3].min() == 255 and white_border_fraction(rgba[..., :3]) < 0.5)


def to_model_image(image: Image.Image, size: int = 64) -> np.ndarray:
    """The one preprocessing of a picture for the models, used by the dataset, the gallery, the page,
    the API and the benchmark. returns: (size, size, 3) uint8

    - sprites and pictures on white: alpha over white, crop to the content, pad to a white square,
      resize (`to_model_rgba`), so the subject fills the frame as in training;
    - photos (`is_photo`): cropping to "non-white content" would keep the whole picture and padding
      would add white bands the models never see with a photo, so: centre-crop to a square (the
      subject of a phone photo is near its middle), resize.
    """
    if not is_photo(image):
        return to_model_rgba(image, size)[0]
    rgb = image.convert("RGB")
    side = min(rgb.size)
    left, top = (rgb.size[0] - side) // 2, (rgb.size[1] - side) // 2
    square = rgb.crop((left, top, left + side, top + side))
    return np.asarray(square.resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)


def png_data_uri(image: np.ndarray, size: int = 48) -> str:
    """(S, S, 3) uint8 -> a small inline PNG (no file on disk, nothing shared between visitors)."""
    buffer = io.BytesIO()
    Image.fromarray(image).resize((size, size)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
