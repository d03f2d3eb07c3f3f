"""pokedemo.images: a corpus of hostile and odd uploads through the real validation path."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from pokedemo.images import MAX_FILE_BYTES, load_image, to_model_image
from pokedemo.task import read_pictures


def _save(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height with almost no pixel data: a decompression bomb's shape."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _sprite(mode="RGBA", size=(40, 40)) -> Image.Image:
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    image.paste((200, 40, 40, 255), (8, 8, size[0] - 8, size[1] - 8))
    return image.convert(mode) if mode != "RGBA" else image


def _animated_gif() -> bytes:
    frames = [_sprite().convert("P") for _ in range(3)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)


def _exif_rotated_jpeg() -> bytes:
    image = Image.new("RGB", (60, 30), (255, 255, 255))
    image.paste((0, 0, 200), (0, 0, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    return _save(image, "JPEG", exif=exif)


GOOD = {
    "sprite.png": lambda: _save(_sprite(), "PNG"),
    "photo.jpg": lambda: _save(_sprite("RGB"), "JPEG"),
    "animated.gif": _animated_gif,
    "animated.webp": lambda: _save(_sprite(), "WEBP", save_all=True, append_images=[_sprite()]),
    "picture.webp": lambda: _save(_sprite(), "WEBP"),
    "old.bmp": lambda: _save(_sprite("RGB"), "BMP"),
    "print.jpg": lambda: _save(_sprite("CMYK"), "JPEG"),
    "deep16.png": lambda: _save(Image.fromarray((np.arange(1600).reshape(40, 40) * 40).astype(np.uint16)), "PNG"),
    "palette.png": lambda: _save(_sprite().convert("P"), "PNG", transparency=0),
    "grey-alpha.png": lambda: _save(_sprite("LA"), "PNG"),
    "grey.png": lambda: _save(_sprite("L"), "PNG"),
    "wrong-extension.jpg": lambda: _save(_sprite(), "PNG"),
    "small-8x8.png": lambda: _save(_sprite(size=(8, 8)), "PNG"),
    "rotated.jpg": _exif_rotated_jpeg,
}

BAD = {
    "essay.png": (lambda: b"Dear teacher, this is my essay.\n" * 20, "not a picture"),
    "empty.png": (lambda: b"", "empty"),
    "truncated.png": (lambda: _save(_sprite(size=(200, 200)), "PNG")[:300], "damaged or truncated"),
    "truncated.jpg": (lambda: _save(_sprite("RGB", (300, 300)), "JPEG")[:600], "damaged or truncated"),
    "dot-1x1.png": (lambda: _save(Image.new("RGB", (1, 1)), "PNG"), "1x1 pixels"),
    "thin.png": (lambda: _save(Image.new("RGB", (2000, 3)), "PNG"), "too small or too thin"),
    "strip.png": (lambda: _save(Image.new("RGB", (900, 40)), "PNG"), "too small or too thin"),
    "huge.png": (lambda: _png_header_only(10000, 10000), "10000x10000"),
    "bomb.png": (lambda: _png_header_only(60000, 60000), "far larger than the limit"),
    "big-file.jpg": (lambda: b"\xff\xd8" + bytes(MAX_FILE_BYTES + 10), "the limit is 10 MB"),
    "scan.tiff": (lambda: _save(_sprite("RGB"), "TIFF"), "TIFF"),
    "icon.ico": (lambda: _save(_sprite(), "ICO"), "ICO"),
    "vector.png": (lambda: b"<svg xmlns='http://www.w3.org/2000/svg'><rect width='9' height='9'/></svg>", "not a picture"),
    "page.jpg": (lambda: b"<html><body>hello</body></html>", "not a picture"),
    "noise.gif": (lambda: bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)), "not a picture"),
    "header-only.gif": (lambda: b"GIF89a" + struct.pack("<HH", 40, 40) + b"\x00\x00\x00", "not a picture"),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uploads")
    for name, make in GOOD.items():
        (folder / name).write_bytes(make())
    for name, (make, _) in BAD.items():
        (folder / name).write_bytes(make())
    return folder


def test_the_corpus_has_at_least_25_files(corpus):
    assert len(list(corpus.iterdir())) >= 25


@pytest.mark.parametrize("name", sorted(GOOD))
def test_odd_but_valid_pictures_are_converted_to_model_inputs(corpus, name):
    image = load_image(corpus / name)
    assert image.mode == "RGBA"
    array = to_model_image(image, 32)
    assert array.shape == (32, 32, 3) and array.dtype == np.uint8


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_files_get_a_message_naming_the_file_and_the_problem(corpus, name):
    with pytest.raises(ValueError) as error:
        load_image(corpus / name)
    assert f"'{name}'" in str(error.value) and BAD[name][1] in str(error.value)


def test_exif_rotation_is_honoured(corpus):
    assert load_image(corpus / "rotated.jpg").size == (30, 60)


def test_a_task_keeps_the_good_files_and_lists_every_bad_one(corpus):
    files = [(str(corpus / n), None, "upload") for n in [*GOOD, *BAD]]
    pictures, problems = read_pictures(files, 32)
    assert len(pictures) == len(GOOD) and len(problems) == len(BAD)
    for name in BAD:
        assert any(f"'{name}'" in p for p in problems)


def test_preprocessing_crops_to_content_and_pads_to_a_white_square():
    image = Image.new("RGBA", (100, 50), (0, 0, 0, 0))
    image.paste((0, 0, 255, 255), (10, 10, 30, 40))  # a 20 x 30 blue box
    array = to_model_image(image, 30)
    assert (array[:, 0] == 255).all() and (array[:, -1] == 255).all()   # white side padding
    assert (array[15, 15] == [0, 0, 255]).all()                        # content fills the height
    assert (array[0, 15] != 255).any() and (array[-1, 15] != 255).any()


def test_a_photo_is_centre_cropped_not_padded_with_white():
    photo = np.zeros((60, 120, 3), dtype=np.uint8)
    photo[:] = (30, 90, 160)                       # a blue wall
    photo[20:40, 50:70] = (250, 200, 0)            # a yellow toy in the middle
    photo[:, :10] = (200, 30, 30)                  # a red strip at the far left: cropped away
    out = to_model_image(Image.fromarray(photo), 60)
    assert out.shape == (60, 60, 3)
    assert not (out == 255).all(axis=-1).any()     # no white padding anywhere
    assert (np.abs(out[0, 0].astype(int) - (30, 90, 160)) < 10).all()      # the wall, not the red strip
    assert (np.abs(out[30, 30].astype(int) - (250, 200, 0)) < 10).all()    # the toy stays in the middle


def test_a_sprite_on_white_is_still_cropped_to_its_content():
    picture = np.full((80, 80, 3), 255, dtype=np.uint8)
    picture[30:50, 10:30] = (40, 160, 40)          # a small green sprite off-centre, on white
    out = to_model_image(Image.fromarray(picture), 20)
    assert (np.abs(out[10, 10].astype(int) - (40, 160, 40)) < 10).all() and (out != 255).any(axis=-1).all()
