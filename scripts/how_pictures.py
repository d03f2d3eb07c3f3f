"""The three pictures of the "How it works" tab (assets/how/*.png), drawn from the gallery's sprites.

    python scripts/how_pictures.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from pokedemo.data.gallery import Gallery  # noqa: E402

OUT = ROOT / "assets" / "how"
COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44)]
FONT, SMALL = ImageFont.load_default(22), ImageFont.load_default(16)


def sprite(gallery: Gallery, name: str, k: int, size: int = 44) -> Image.Image:
    item = gallery.by_name[name][k % len(gallery.by_name[name])]
    return Image.open(gallery.path(item.file)).convert("RGB").resize((size, size), Image.NEAREST)


def star(draw: ImageDraw.ImageDraw, x: float, y: float, r: float, fill) -> None:
    angles = np.pi / 2 + np.arange(10) * np.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
    draw.polygon([(x + q * np.cos(a), y - q * np.sin(a)) for a, q in zip(angles, radii)], fill=fill, outline="black")


def teacher_and_student(gallery: Gallery) -> Image.Image:
    image = Image.new("RGB", (760, 250), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((20, 40, 300, 220), fill=(210, 225, 245), outline="black", width=2)
    for x in range(28, 296, 8):
        for y in range(48, 216, 8):
            draw.rectangle((x, y, x + 4, y + 4), fill=(120, 150, 200))
    draw.text((20, 8), "teacher: 11,000,000 numbers", font=FONT, fill="black")
    draw.rectangle((520, 118, 548, 146), fill=(255, 225, 200), outline="black", width=2)
    draw.text((440, 8), "student: 93,000 numbers", font=FONT, fill="black")
    draw.line((310, 132, 505, 132), fill="black", width=3)
    draw.polygon([(505, 124), (517, 132), (505, 140)], fill="black")
    draw.text((330, 140), "copies the teacher", font=SMALL, fill="black")
    image.paste(sprite(gallery, "Pikachu", 0, 64), (600, 100))
    draw.text((575, 175), "both turn a picture\ninto a list of numbers", font=SMALL, fill="black")
    return image


def prototypes(gallery: Gallery) -> Image.Image:
    image = Image.new("RGB", (760, 350), "white")
    draw = ImageDraw.Draw(image)
    rng = np.random.default_rng(0)
    centres, stars = [(140, 110), (330, 235), (620, 110)], []
    for (cx, cy), colour, name in zip(centres, COLOURS, ("Bulbasaur", "Charmander", "Squirtle")):
        points = [(cx + int(rng.integers(-70, 70)), cy + int(rng.integers(-50, 50))) for _ in range(4)]
        for k, (x, y) in enumerate(points):
            draw.ellipse((x - 26, y - 26, x + 26, y + 26), outline=colour, width=4)
            image.paste(sprite(gallery, name, k), (x - 22, y - 22))
        stars.append(np.mean(points, axis=0))
        star(draw, *stars[-1], 20, colour)  # the star is the average: drawn where the pictures average
    qx, qy = 470, 120
    image.paste(sprite(gallery, "Squirtle", 5, 48), (qx - 24, qy - 24))
    draw.rectangle((qx - 26, qy - 26, qx + 26, qy + 26), outline="black", width=2)
    draw.line((qx + 28, qy, stars[2][0] - 22, stars[2][1]), fill="black", width=3)
    draw.text((20, 318), "star = the average of a class's pictures.  A new picture (square) gets the class of the "
              "closest star.", font=SMALL, fill="black")
    return image


def fine_tuning() -> Image.Image:
    image = Image.new("RGB", (760, 280), "white")
    draw = ImageDraw.Draw(image)
    rng = np.random.default_rng(1)
    for panel, (x0, spread, title) in enumerate(((20, 70, "before fine-tuning"), (400, 28, "after a few steps"))):
        draw.rectangle((x0, 40, x0 + 340, 260), outline=(180, 180, 180), width=2)
        draw.text((x0 + 10, 8), title, font=FONT, fill="black")
        for (cx, cy), colour in zip(((x0 + 90, 120), (x0 + 240, 110), (x0 + 170, 200)), COLOURS):
            for _ in range(9):
                x, y = cx + rng.normal() * spread / 2.2, cy + rng.normal() * spread / 2.2
                x, y = np.clip(x, x0 + 10, x0 + 330), np.clip(y, 50, 250)
                draw.ellipse((x - 7, y - 7, x + 7, y + 7), fill=colour)
    draw.line((365, 150, 392, 150), fill="black", width=3)
    draw.polygon([(390, 143), (399, 150), (390, 157)], fill="black")
    return image


def main() -> int:
    gallery = Gallery(ROOT / "assets" / "gallery")
    OUT.mkdir(parents=True, exist_ok=True)
    for name, picture in (("teacher-student", teacher_and_student(gallery)), ("prototypes", prototypes(gallery)),
                          ("fine-tuning", fine_tuning())):
        picture.save(OUT / f"{name}.png", optimize=True)
        print(f"wrote {OUT / name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
