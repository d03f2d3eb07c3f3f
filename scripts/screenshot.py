"""Screenshot of the real page in headless Debian Chromium: a random task, run, both maps drawn.

    python scripts/screenshot.py [--out assets/screenshot.png] [--photo]   # --photo: photo-like queries
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
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--photo", action="store_true", help="tick 'photo-like queries' before Run")
    args = parser.parse_args()
    process, url, _ = start_server()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.goto(url)
            page.fill("input[aria-label='random task seed']", str(args.seed)) if page.locator(
                "input[aria-label='random task seed']").count() else None
            page.click("#random-task")
            page.wait_for_selector("#support-4 img", timeout=30_000)
            if args.photo:
                page.locator("#photo-queries input[type=checkbox]").check()
            page.click("#run")
            page.wait_for_selector("#predictions table", timeout=120_000)
            page.wait_for_selector("#student-plot .js-plotly-plot", timeout=30_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(args.out), full_page=True)
            browser.close()
    finally:
        process.terminate()
        process.wait(10)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
