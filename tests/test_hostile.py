"""Hostile requests against the real server (loopback, bounded): each gets a clear answer, the server
keeps serving, and another visitor's task completes meanwhile."""
from __future__ import annotations

import struct
import threading
import zlib

import pytest
from gradio_client import Client, handle_file
from PIL import Image

import app

TASK = ["Pikachu", "Gengar", "Onix"]


def _gallery_task():
    supports, labels = [], []
    for name in TASK:
        for item in app.GALLERY.by_name[name][:2]:
            supports.append(handle_file(str(app.GALLERY.path(item.file))))
            labels.append(name)
    return supports, ",".join(labels), [handle_file(str(app.GALLERY.path(app.GALLERY.by_name["Onix"][-1].file)))]


def _bomb(path):
    """A PNG whose header claims 100,000 x 100,000 pixels."""
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def _expect_error(client, *args, match: str):
    with pytest.raises(Exception) as caught:
        client.predict(*args, api_name="/classify")
    assert match in str(caught.value), str(caught.value)


@pytest.fixture(scope="module")
def visitor_task(server_url):
    """A second visitor who runs an ordinary task while the hostile calls come in."""
    result = {}

    def visit():
        supports, labels, queries = _gallery_task()
        result["out"] = Client(server_url, verbose=False).predict(supports, labels, queries, 5, False,
                                                                 api_name="/classify")

    thread = threading.Thread(target=visit)
    thread.start()
    yield thread, result
    thread.join(timeout=300)  # never leave the visitor running past the server's life


def test_a_million_fine_tuning_steps_are_refused_naming_the_limit(server_url, visitor_task):
    supports, labels, queries = _gallery_task()
    _expect_error(Client(server_url, verbose=False), supports, labels, queries, 1_000_000, False,
                  match="between 0 and 100")


def test_too_many_files_are_refused_before_any_is_decoded(server_url, tmp_path, visitor_task):
    picture = tmp_path / "tiny.png"
    Image.new("RGB", (16, 16), (200, 30, 30)).save(picture)
    supports, labels, _ = _gallery_task()
    _expect_error(Client(server_url, verbose=False), supports, labels, [handle_file(str(picture))] * 1000, 5, False,
                  match="1000 query images; at most 50")


def test_a_decompression_bomb_is_named_and_the_rest_of_the_task_runs(server_url, tmp_path, visitor_task):
    supports, labels, queries = _gallery_task()
    bomb = handle_file(str(_bomb(tmp_path / "huge.png")))
    out = Client(server_url, verbose=False).predict(supports, labels, queries + [bomb], 0, False,
                                                    api_name="/classify")
    assert any("huge.png" in p and "limit" in p for p in out["skipped"]) and len(out["predictions"]) == 1


def test_class_names_with_html_come_back_as_text_and_are_escaped_on_the_page(server_url, visitor_task):
    supports, _, queries = _gallery_task()
    evil = ["<img src=x onerror=alert(1)>", "<b>two</b>", "three&"]
    out = Client(server_url, verbose=False).predict(supports, ",".join(n for n in evil for _ in range(2)), queries,
                                                    0, False, api_name="/classify")
    assert out["classes"] == evil
    import numpy as np

    from pokedemo import report
    from pokedemo.task import Picture, map_points, run_task

    pictures = [Picture(np.full((64, 64, 3), 200 + k, dtype=np.uint8), f"<script>{k}</script>.png", label=k % 2)
                for k in range(4)]
    result = run_task(app.MODELS, evil[:2], [pictures[:2], pictures[2:3]], pictures[3:], 0)
    for html in (report.predictions_grid(result), report.details_html(result)):
        assert "<script>" not in html and "&lt;script&gt;" in html and "<img src=x" not in html
        assert "&lt;b&gt;two&lt;/b&gt;" in html and "<b>two</b>" not in html
    hover = " ".join(map_points(result, "teacher")["hover"])
    assert "<script>" not in hover and "<img src=x" not in hover and "&lt;img src=x" in hover


def test_the_other_visitor_finished_with_the_right_answers_meanwhile(visitor_task):
    thread, result = visitor_task
    thread.join(timeout=300)
    assert not thread.is_alive()
    out = result["out"]
    assert out["classes"] == TASK
    assert {out["predictions"][0][k]["label"] for k in ("teacher", "student", "student+fine-tune")} == {"Onix"}
