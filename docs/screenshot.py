"""Make docs/report.png, the README's picture of `charlab report`, from a short real run.

    python docs/screenshot.py            # needs Chromium on PATH (Debian: apt-get install chromium)

The run is made as `runs/mlp-bn-5k` inside a temporary folder that is the commands' working
directory, so the page shows that plain relative name, not the temporary folder's path.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from charlab.rundir import REPORT

CHROMIUM_NAMES = ("chromium", "chromium-browser")  # Debian's, Ubuntu's
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
STEPS = "5000"  # long enough for a loss curve and settled diagnostics, a few seconds of training
VIEWPORT = {"width": 1200, "height": 1400}
OUT = Path(__file__).resolve().parent / "report.png"
RUN = "runs/mlp-bn-5k"  # relative to the temporary working directory: what the page shows


def main() -> None:
    chromium = next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    if chromium is None:
        sys.exit(f"no {' or '.join(CHROMIUM_NAMES)} on PATH; install Chromium (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / RUN
        charlab = [sys.executable, "-m", "charlab"]

        def command(*args: str) -> None:
            subprocess.run([*charlab, *args], check=True, stdout=subprocess.DEVNULL, cwd=tmp)

        command("train", "--steps", STEPS, "--eval-interval", "1000", "--out", RUN, "--diagnose", "--samples", "12",
                "--json")
        command("diagnose", RUN, "--json")
        command("report", RUN)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=VIEWPORT)
            page.goto((run / REPORT).as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(OUT))
            browser.close()
    print(OUT)


if __name__ == "__main__":
    main()
