"""Screenshot of the real page in headless Debian Chromium: the example task of a first visit, run, both
maps drawn; the first screen only (what a visitor sees without scrolling).

    python scripts/screenshot.py [--out assets/screenshot.png] [--size 1366x768] [--photo] [--full]
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts.serve import start_server  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("assets/screenshot.png"))
    parser.add_argument("--size", default="1366x768", help="viewport WIDTHxHEIGHT")
    parser.add_argument("--photo", action="store_true", help="tick 'test pictures as phone photos' before Run")
    parser.add_argument("--full", action="store_true", help="the whole page, not only the first screen")
    args = parser.parse_args()
    process, url, _ = start_server()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
            width, height = (int(v) for v in args.size.split("x"))
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url)
            page.wait_for_selector("#support-4 img", timeout=30_000)  # the example task is loaded
            if args.photo:
                page.locator("#photo-queries input[type=checkbox]").check()
            page.click("#run")
            page.wait_for_selector("#predictions .predictions-grid", timeout=120_000)
            page.wait_for_selector("#student-plot .js-plotly-plot", timeout=60_000)
            page.wait_for_timeout(2000)
            page.screenshot(path=str(args.out), full_page=args.full)
            browser.close()
    finally:
        process.terminate()
        process.wait(10)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
