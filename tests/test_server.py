"""The served page through gradio_client, as the README's API example uses it."""
from gradio_client import Client, handle_file

import app


def test_classify_through_gradio_client(server_url):
    client = Client(server_url, verbose=False)
    supports, labels = [], []
    for name in ["Pikachu", "Gengar", "Onix"]:
        for item in app.GALLERY.by_name[name][:2]:
            supports.append(handle_file(str(app.GALLERY.path(item.file))))
            labels.append(name)
    query = handle_file(str(app.GALLERY.path(app.GALLERY.by_name["Onix"][-1].file)))
    out = client.predict(supports, ",".join(labels), [query], 3, api_name="/classify")
    assert out["classes"] == ["Pikachu", "Gengar", "Onix"]
    assert {"teacher", "student", "student+fine-tune"} <= set(out["predictions"][0])


def test_the_server_does_not_serve_files_outside_the_gallery(server_url):
    import httpx

    for path in ["gradio_api/file=checkpoints/student.json", "gradio_api/file=/etc/passwd",
                 "gradio_api/file=app.py", "gradio_api/file=assets/gallery/../../app.py"]:
        response = httpx.get(server_url + path)
        assert response.status_code in (403, 404), path
    gallery_file = app.GALLERY.path(app.GALLERY.items[0].file)
    assert httpx.get(server_url + f"gradio_api/file={gallery_file}").status_code == 200


def test_the_documented_api_example_runs_as_written(server_url, capsys, monkeypatch):
    import re

    from pokedemo.config import REPO_ROOT

    guide = (REPO_ROOT / "docs" / "serving.md").read_text()
    example = next(block for block in re.findall(r"```python\n(.*?)```", guide, re.S) if "/classify" in block)
    monkeypatch.chdir(REPO_ROOT)  # the example's gallery paths are relative to the repository
    exec(example.replace("http://127.0.0.1:7860/", server_url), {})
    printed = capsys.readouterr().out
    assert "'label': 'Gengar'" in printed  # the query is Gengar's dream-world art


def test_the_one_upload_api_client_answers_every_query_and_names_a_refused_request(server_url, tmp_path):
    import pytest

    from scripts.api_client import classify
    from scripts.serve import gallery_task

    paths, labels, queries, names = gallery_task(app.GALLERY, seed=3, n_query=3)
    assert len(paths) + len(queries) == 40
    out = classify(server_url, paths, labels, queries, steps=2)
    assert out["classes"] == names and len(out["predictions"]) == len(queries) == 15
    assert {p["student+fine-tune"]["label"] for p in out["predictions"]} <= set(names)
    with pytest.raises(RuntimeError, match="class names"):
        classify(server_url, paths[:2], "OnlyOneName", queries[:1], steps=2)
