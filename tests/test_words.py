"""The words a class reads: the "How it works" text is easy to read and true to the page."""
from __future__ import annotations

import re

import textstat

from pokedemo.config import REPO_ROOT
from pokedemo.report import markdown_sections

HOW = REPO_ROOT / "docs" / "how-it-works.md"


def plain_text(markdown: str) -> str:
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", markdown)            # pictures
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)              # links keep their words
    return re.sub(r"[#*`]", "", text)


def test_how_it_works_reads_easily_for_a_class_of_14_year_olds():
    text = plain_text(HOW.read_text(encoding="utf-8"))
    # Flesch reading ease >= 70 is "fairly easy" (about 12-13-year-olds); Flesch-Kincaid grade <= 8: US grade 8
    assert textstat.flesch_reading_ease(text) >= 70, textstat.flesch_reading_ease(text)
    assert textstat.flesch_kincaid_grade(text) <= 8, textstat.flesch_kincaid_grade(text)
    assert len(text.split()) <= 500                                    # short: one screen or two


def test_how_it_works_has_its_pictures_and_describes_the_page_as_it_is():
    sections = markdown_sections(HOW.read_text(encoding="utf-8"), HOW.parent)
    pictures = [value for kind, value in sections if kind == "image"]
    assert len(pictures) == 3 and all(__import__("pathlib").Path(p).exists() for p in pictures)
    text = HOW.read_text(encoding="utf-8")
    for words in ("red ring", "slider under the student's map", "test pictures as phone photos", "none of these",
                  "Big circles", "Stars"):
        assert words in text, words
    for jargon in ("SimpleShot", "KL", "512-dimensional", "embedding"):
        assert jargon not in text, jargon
    assert "how-it-works-technical.md" not in "".join(v for k, v in sections if k == "text")
