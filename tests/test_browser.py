"""The page in headless Debian Chromium, driven by Playwright as a person would use it."""
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium")
if CHROMIUM is None:
    if os.environ.get("CI"):
        raise RuntimeError("CI must install Debian's chromium (see .ci/run)")
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(server_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    page.goto(server_url)
    page.wait_for_selector("#random-task")
    yield page
    page.close()


def test_a_random_task_runs_and_shows_predictions_and_both_maps(page, tmp_path_factory):
    page.click("#random-task")
    expect(page.locator("#support-0 img").first).to_be_visible(timeout=30_000)
    page.click("#run")
    expect(page.locator("#predictions table")).to_be_visible(timeout=120_000)
    expect(page.locator("#teacher-plot .js-plotly-plot")).to_be_visible(timeout=30_000)
    expect(page.locator("#student-plot .js-plotly-plot")).to_be_visible(timeout=30_000)
    assert page.locator("#predictions tr").count() >= 3
    shots = tmp_path_factory.mktemp("shots")
    page.screenshot(path=str(shots / "page.png"), full_page=True)


def test_photo_like_queries_show_the_rendered_pictures_the_models_saw(page, tmp_path_factory):
    page.locator("#photo-queries input[type=checkbox]").check()
    page.click("#run")
    expect(page.locator("#predictions")).to_contain_text("photo-like", timeout=120_000)
    assert page.locator("#predictions tr", has_text="photo-like").count() >= 3
    page.screenshot(path=str(tmp_path_factory.mktemp("shots") / "photo-like.png"), full_page=True)
    page.locator("#photo-queries input[type=checkbox]").uncheck()


def test_switching_to_umap_redraws_the_maps(page):
    before = page.locator("#teacher-plot .js-plotly-plot").inner_html()
    page.get_by_role("radio", name="UMAP").check()
    for _ in range(120):
        page.wait_for_timeout(500)
        if page.locator("#teacher-plot .js-plotly-plot").count() and \
                page.locator("#teacher-plot .js-plotly-plot").inner_html() != before:
            break
    else:
        raise AssertionError("the teacher's map was not redrawn after switching to UMAP")
    expect(page.locator("#student-plot .js-plotly-plot")).to_be_visible()


def test_cancel_during_a_long_fine_tuning_still_shows_predictions(page):
    page.locator("#steps input[type=number]").fill("100")
    page.locator("#steps input[type=number]").press("Enter")
    page.click("#run")
    page.wait_for_timeout(1500)
    page.click("#cancel")
    expect(page.locator("#status")).to_contain_text("Fine-tuning was cancelled", timeout=120_000)


def test_a_bad_upload_shows_a_message_naming_the_file(page, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("definitely not a png")
    page.locator("#queries input[type=file]").set_input_files(str(bad))
    page.wait_for_timeout(1500)
    page.click("#run")
    expect(page.locator("#status")).to_contain_text("notes.png", timeout=120_000)


def test_closing_the_tab_mid_run_stops_the_work_and_deletes_the_uploads(server_url, browser, tmp_path):
    import time

    import app
    from PIL import Image

    upload = tmp_path / "my-own-picture.png"
    Image.new("RGB", (40, 40), (10, 120, 200)).save(upload)
    # a second visitor's own tab
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    page.goto(server_url)
    page.click("#random-task")
    expect(page.locator("#support-0 img").first).to_be_visible(timeout=30_000)
    page.locator("#queries input[type=file]").set_input_files(str(upload))
    held = []
    for _ in range(60):  # the upload event registers the file with the visitor's session
        held = [(s, p) for s, paths in app.SESSIONS.holders().items() for p in paths if p.endswith(upload.name)]
        if held:
            break
        page.wait_for_timeout(250)
    assert held, "the upload was not registered with the session"
    session, cached = held[0]
    flag = app.SESSIONS.cancel_flag(session)
    page.locator("#steps input[type=number]").fill("100")
    page.locator("#steps input[type=number]").press("Enter")
    page.click("#run")
    page.wait_for_timeout(1500)
    page.close()                      # the visitor leaves mid-run
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (Path(cached).exists() or not flag.is_set()):
        time.sleep(0.5)
    assert flag.is_set(), "the run of a closed tab was not told to stop"
    assert not Path(cached).exists(), "the closed session's upload is still on disk"
