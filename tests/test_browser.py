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
def playwright():
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
    yield browser
    browser.close()


DESKTOP, PHONE = {"width": 1366, "height": 768}, {"width": 390, "height": 844}
EMOJI = set("\u25b6\u270b\u274c\u26a0\U0001f3b2")  # marks the page once carried by emoji alone


def open_page(browser, server_url, viewport):
    page = browser.new_page(viewport=viewport)
    page.goto(server_url)
    expect(page.locator("#support-4 img").first).to_be_visible(timeout=60_000)  # the example task is there
    return page


def run_and_wait(page):
    """Press Run and wait for this run's end (the status of an earlier run is replaced first)."""
    earlier = page.locator("#status p").first.element_handle() if page.locator("#status p").count() else None
    page.click("#run")
    if earlier is not None:
        page.wait_for_function("element => !element.isConnected", arg=earlier, timeout=60_000)
    expect(page.locator("#status")).to_contain_text("Done in", timeout=180_000)
    expect(page.locator("#student-plot .js-plotly-plot")).to_be_visible(timeout=30_000)


def open_details(page):
    """Open the details (once: a second click would close them)."""
    if not page.locator("#download-csv").is_visible():
        page.locator("#details-box").get_by_text("Details").click()
    expect(page.locator("#download-csv")).to_be_visible(timeout=10_000)


def box(page, selector):
    return page.locator(selector).first.bounding_box()


@pytest.fixture(scope="module", params=[DESKTOP, PHONE], ids=["1366x768", "390x844"])
def page(server_url, browser, request):
    """A visitor on a laptop (1366x768) or a phone (390x844), who has run the example task once; every test
    that takes it runs at both sizes."""
    page = open_page(browser, server_url, request.param)
    run_and_wait(page)
    yield page
    page.close()


def test_the_first_screen_holds_the_example_task_run_the_maps_and_the_answers(server_url, browser, tmp_path_factory):
    page = open_page(browser, server_url, DESKTOP)
    assert box(page, "#run")["y"] + box(page, "#run")["height"] <= DESKTOP["height"]   # Run visible at once
    assert "Task 0 is ready" in page.inner_text("#status")
    run_and_wait(page)
    page.evaluate("window.scrollTo(0, 0)")
    for selector in ("#teacher-plot", "#student-plot"):
        map_box = box(page, selector)
        assert map_box["y"] + map_box["height"] <= DESKTOP["height"], (selector, map_box)
    first_cell = box(page, "#predictions .cell")
    assert first_cell["y"] + first_cell["height"] <= DESKTOP["height"]
    assert box(page, "#predictions")["x"] > box(page, "#teacher-plot")["x"]   # the answers beside the maps
    assert page.locator("#predictions .cell").count() == 25
    legend = page.inner_text("#legend")
    assert all(word in legend for word in ("support", "test picture", "star", "red ring"))
    assert not EMOJI & set(page.inner_text("body")) and not any(ord(c) >= 0x1F000 for c in page.inner_text("body"))
    page.screenshot(path=str(tmp_path_factory.mktemp("shots") / "desktop.png"))
    page.close()


def test_on_a_phone_everything_is_reachable(server_url, browser, tmp_path_factory):
    page = open_page(browser, server_url, PHONE)
    run_and_wait(page)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide on a {PHONE['width']} px screen"
    answers = page.locator("#predictions .answer")
    assert answers.count() == 25 * 3
    for index in (0, answers.count() - 1):           # the fine-tuned student's answers are not cut off
        answer = answers.nth(index)
        answer.scroll_into_view_if_needed()
        right = answer.bounding_box()["x"] + answer.bounding_box()["width"]
        assert right <= PHONE["width"] + 0.5
    open_details(page)
    expect(page.locator("#details table.confusion").first).to_be_attached(timeout=10_000)
    page.screenshot(path=str(tmp_path_factory.mktemp("shots") / "phone.png"), full_page=True)
    open_tab(page, "How it works")                      # the tabs that do not fit sit behind a menu
    expect(page.locator("#how .how-picture img").first).to_be_visible(timeout=10_000)
    assert page.locator("#how .how-picture img").count() == 3
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.close()


def open_tab(page, name):
    tab = page.get_by_role("tab", name=name)
    if tab.count() and tab.first.is_visible():
        tab.first.click()
        return
    page.get_by_role("button", name="More tabs").click()
    page.locator(".overflow-menu button", has_text=name).filter(visible=True).first.click()


def _marker_positions(page, selector):
    """Where the student's map draws its points now (SVG transforms of every marker)."""
    return page.eval_on_selector_all(f"{selector} .scatterlayer .point", "els => els.map(e => e.getAttribute('transform'))")


def test_the_fine_tuning_slider_moves_the_same_points_smoothly(page):
    plot = "#student-plot"
    expect(page.locator(f"{plot} .slider-rail-touch-rect")).to_be_attached(timeout=10_000)
    page.locator(f"{plot} .slider-rail-touch-rect").scroll_into_view_if_needed()
    after = _marker_positions(page, plot)
    rail = page.locator(f"{plot} .slider-rail-touch-rect").bounding_box()
    page.mouse.click(rail["x"] + 2, rail["y"] + rail["height"] / 2)   # back to "before fine-tuning"
    page.wait_for_timeout(250)
    midway = _marker_positions(page, plot)
    page.wait_for_timeout(1500)
    before = _marker_positions(page, plot)
    assert len(before) == len(after) == len(midway)               # the same points, moved
    assert before != after, "the slider did not move the points"
    assert midway != before and midway != after, "the points jumped instead of moving"
    assert "student: before fine-tuning" in page.locator(f"{plot} .slider-container").text_content()


def test_hovering_a_point_shows_its_picture(page):
    point = page.locator("#teacher-plot .scatterlayer .point").first
    page.locator("#teacher-plot").scroll_into_view_if_needed()
    point.hover(force=True)
    expect(page.locator("#hover-picture")).to_be_visible(timeout=5_000)
    assert page.locator("#hover-picture img").get_attribute("src").startswith("data:image/png;base64,")


def test_gallery_queries_added_by_hand_never_repeat_a_support(page):
    name = page.locator("#class-name-0 textarea, #class-name-0 input").first.input_value()
    supports = {src.split("/")[-1] for src in page.eval_on_selector_all("#support-0 img", "e => e.map(i => i.src)")}
    page.locator("#queries").scroll_into_view_if_needed()
    page.get_by_label("add test pictures from the gallery").fill(name)
    page.get_by_role("option", name=name, exact=True).click()
    page.wait_for_timeout(1500)
    queries = {src.split("/")[-1] for src in page.eval_on_selector_all("#queries img", "e => e.map(i => i.src)")}
    assert supports and queries and not supports & queries, (supports & queries, len(queries))


def test_a_slots_own_test_picture_is_scored_as_that_class(page, tmp_path):
    from PIL import Image

    mine = tmp_path / "my-own-test.png"
    Image.new("RGB", (64, 64), (200, 40, 40)).save(mine)
    page.locator("#test-1 input[type=file]").set_input_files(str(mine))
    page.wait_for_timeout(1500)
    run_and_wait(page)
    open_details(page)
    row = page.locator("#details table.details tr", has_text="my-own-test.png")
    expect(row).to_have_count(1, timeout=10_000)
    class_two = page.locator("#class-name-1 textarea, #class-name-1 input").first.input_value()
    assert class_two in row.inner_text()


def test_photo_like_queries_show_the_rendered_pictures_the_models_saw(page, tmp_path_factory):
    page.locator("#photo-queries input[type=checkbox]").check()
    run_and_wait(page)
    assert page.locator("#predictions img[title*='photo-like']").count() >= 3
    page.screenshot(path=str(tmp_path_factory.mktemp("shots") / "photo-like.png"))
    page.locator("#photo-queries input[type=checkbox]").uncheck()


def test_switching_to_umap_redraws_the_maps(page):
    before = page.locator("#teacher-plot .js-plotly-plot").inner_html()
    page.get_by_text("Map settings").click()
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
    expect(page.locator("#status")).to_contain_text("fine-tuning the student: step", timeout=120_000)
    page.click("#cancel")
    expect(page.locator("#status")).to_contain_text("Fine-tuning was cancelled", timeout=120_000)
    assert page.locator("#predictions .cell").count() >= 25      # the answers stay on the page
    page.locator("#steps input[type=number]").fill("5")
    page.locator("#steps input[type=number]").press("Enter")


def test_the_answers_and_the_fine_tuned_student_download_from_the_details(page):
    open_details(page)
    page.locator("#download-csv").click()
    expect(page.locator("#downloads a[href*='pokedemo-answers.csv']")).to_have_count(1, timeout=30_000)
    page.locator("#download-model").click()
    for name in ("fine-tuned-student.safetensors", "fine-tuned-student.json", "fine-tuned-student.onnx"):
        expect(page.locator(f"#downloads a[href*='{name}']")).to_have_count(1, timeout=60_000)


def test_a_bad_upload_shows_a_message_naming_the_file(page, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("definitely not a png")
    page.locator("#queries input[type=file]").set_input_files(str(bad))
    page.wait_for_timeout(1500)
    page.click("#run")
    expect(page.locator("#status")).to_contain_text("notes.png", timeout=120_000)


def test_the_webcam_streams_frames_to_the_fine_tuned_student(server_url, playwright, tmp_path_factory):
    """A fake camera (Chromium's test pattern) streams to the visitor's fine-tuned student."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS + [
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"])
    try:
        context = browser.new_context(viewport=DESKTOP, permissions=["camera"])
        page = context.new_page()
        page.goto(server_url)
        expect(page.locator("#support-4 img").first).to_be_visible(timeout=60_000)
        run_and_wait(page)
        page.get_by_text("Webcam: your fine-tuned student, live").click()
        webcam = page.locator("#webcam")
        webcam.scroll_into_view_if_needed()
        webcam.get_by_role("button", name="Click to Access Webcam").click()
        record = webcam.locator("button.capture-button")       # the fake camera's picture is on: stream it
        expect(record).to_be_visible(timeout=30_000)
        record.click()
        expect(page.locator("#webcam-answer")).to_contain_text("top 3", timeout=60_000)
        page.screenshot(path=str(tmp_path_factory.mktemp("shots") / "webcam.png"))
    finally:
        browser.close()


def test_closing_the_tab_mid_run_stops_the_work_and_deletes_the_uploads(server_url, browser, tmp_path):
    import time

    import app
    from PIL import Image

    upload = tmp_path / "my-own-picture.png"
    Image.new("RGB", (40, 40), (10, 120, 200)).save(upload)
    # a second visitor's own tab
    page = open_page(browser, server_url, DESKTOP)
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
