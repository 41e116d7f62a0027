"""Make docs/report.png, the README's picture of `charlab report`, from a short real run.

    python docs/screenshot.py            # needs Debian's chromium (apt-get install chromium)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
STEPS = "5000"  # long enough for a loss curve and settled diagnostics, a few seconds of training
VIEWPORT = {"width": 1200, "height": 1400}
OUT = Path(__file__).resolve().parent / "report.png"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "mlp-bn"
        charlab = [sys.executable, "-m", "charlab"]
        subprocess.run([*charlab, "train", "--steps", STEPS, "--eval-interval", "1000", "--out", str(run),
                        "--diagnose", "--samples", "12", "--json"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([*charlab, "diagnose", str(run), "--json"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([*charlab, "report", str(run)], check=True, stdout=subprocess.DEVNULL)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=VIEWPORT)
            page.goto((run / "report.html").as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(OUT))
            browser.close()
    print(OUT)


if __name__ == "__main__":
    main()
