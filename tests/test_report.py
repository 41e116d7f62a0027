"""`charlab report RUN`: one self-contained report.html, checked in headless Chromium (Debian's
`chromium`, installed by scripts/test): no console errors, no request leaves the file, every image decodes,
the BatchNorm slider recomputes the batch statistics (torch's batch_norm is the oracle), and run data
that looks like HTML shows as text. The test saves a screenshot; docs/screenshot.py makes the README's.

The browser is the first of ``chromium`` / ``chromium-browser`` on PATH. Without one (or without
playwright) the browser tests skip, saying why, unless CHARLAB_REQUIRE_BROWSER=1 (set by scripts/test,
which installs the browser): then they fail, so a CI run that lost its browser cannot pass."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

import charlab
from charlab.cli.main import main
from charlab.experiments.runner import Column, ExperimentResult, write_outputs
from charlab.report.page import build_report
from charlab.rundir import METRICS, REPORT, SAMPLES, read_metrics

CHROMIUM_NAMES = ("chromium", "chromium-browser")  # Debian's, Ubuntu's
REQUIRE_BROWSER = "CHARLAB_REQUIRE_BROWSER"  # "1": no browser is a failure, not a skip
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
HOSTILE = "<img src=x onerror=alert(1)>"
VIEWPORT = {"width": 1200, "height": 1000}
BN_EPS = 1e-5  # the widget's eps, BatchNorm's default


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("report") / "run"
    charlab.train(steps=200, n_hidden=32, eval_interval=100, out=out, diagnose=True, n_samples=8)
    samples = json.loads((out / SAMPLES).read_text())
    samples.append({"text": HOSTILE, "novelty": "new"})  # data that looks like HTML must stay text
    (out / SAMPLES).write_text(json.dumps(samples))
    assert main(["report", str(out)]) == 0
    return out


def no_browser(reason: str) -> None:
    """Skip, saying why; fail instead when the test command promised a browser."""
    if os.environ.get(REQUIRE_BROWSER) == "1":
        pytest.fail(f"{reason}, but {REQUIRE_BROWSER}=1 (scripts/test installs it with apt-get; see its output)",
                    pytrace=False)
    pytest.skip(f"{reason}; scripts/test installs it")


@pytest.fixture(scope="module")
def browser():
    executable = next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    if executable is None:
        no_browser(f"no Chromium on PATH ({' or '.join(CHROMIUM_NAMES)})")
    try:
        from playwright.sync_api import sync_playwright  # the test extra; imported only for the browser tests
    except ImportError:
        no_browser("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(browser, run_dir):
    page = browser.new_page(viewport=VIEWPORT)
    page.events = {"errors": [], "requests": [], "dialogs": []}
    page.on("console", lambda m: page.events["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.events["errors"].append(str(e)))
    page.on("request", lambda r: page.events["requests"].append(r.url))
    page.on("dialog", lambda d: (page.events["dialogs"].append(d.message), d.dismiss()))
    page.goto((run_dir / REPORT).resolve().as_uri())
    page.wait_for_load_state("load")
    return page


@pytest.mark.slow  # the browser
def test_loads_without_errors_or_network(page, run_dir, tmp_path):
    assert page.events["errors"] == []
    assert page.events["requests"] == [(run_dir / REPORT).resolve().as_uri()]  # nothing but the file itself
    headings = page.locator("h2").all_text_contents()
    for title in ("Losses", "Samples", "Diagnostics", "BatchNorm, interactively", "Configuration"):
        assert title in headings
    screenshot = tmp_path / "report.png"
    page.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size > 0


@pytest.mark.slow  # the browser
def test_every_image_decodes(page):
    sizes = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth, e.src.slice(0, 22)])")
    assert len(sizes) >= 5  # loss curve and the diagnostics figures
    for complete, width, src in sizes:
        assert complete and width > 0
        assert src == "data:image/png;base64,"


def widget_values(page) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    x = torch.tensor([float(v) for v in page.locator(".bn-x").all_text_contents()], dtype=torch.float64)
    y = torch.tensor([float(v) for v in page.locator(".bn-y").all_text_contents()], dtype=torch.float64)
    return x, y, float(page.locator("#bn-mean").text_content()), float(page.locator("#bn-std").text_content())


def check_against_batch_norm(x, y, mean, std) -> None:
    expected = F.batch_norm(x.view(-1, 1), None, None, training=True, eps=BN_EPS).view(-1)  # (5,)
    assert torch.allclose(y, expected, atol=1e-4)
    assert mean == pytest.approx(float(x.mean()), abs=1e-4)
    assert std == pytest.approx(float((x.var(correction=0) + BN_EPS).sqrt()), abs=1e-4)


@pytest.mark.slow  # the browser
def test_slider_moves_the_batch_statistics_and_every_output(page):
    x0, y0, mean0, std0 = widget_values(page)
    assert len(x0) == 5
    check_against_batch_norm(x0, y0, mean0, std0)
    page.locator("#bn-slider").fill("4")
    x1, y1, mean1, std1 = widget_values(page)
    check_against_batch_norm(x1, y1, mean1, std1)
    moved = (x1 != x0).nonzero().flatten().tolist()
    assert moved == [2] and float(x1[2]) == pytest.approx(4.0)
    assert mean1 != mean0 and std1 != std0
    assert bool((y1 != y0).all())  # one input moved, every normalised output changed
    assert page.events["errors"] == []


@pytest.mark.slow  # the browser
def test_html_in_the_data_is_shown_as_text(page, run_dir):
    assert HOSTILE in page.locator("#samples").inner_text()
    assert page.locator('img[src="x"]').count() == 0
    assert page.events["dialogs"] == []
    raw = (run_dir / REPORT).read_text()
    assert HOSTILE not in raw and "&lt;img src=x onerror=alert(1)&gt;" in raw


def test_report_content_comes_from_the_run(run_dir):
    raw = (run_dir / REPORT).read_text()
    final = [r for r in read_metrics(run_dir) if r["event"] == "final"][-1]
    assert f"{final['dev']:.4g}" in raw
    for sample in json.loads((run_dir / SAMPLES).read_text())[:-1]:
        assert f"<td>{sample['text']}</td>" in raw
    assert len(re.findall(r'<td class="(?:pass|warn|fail)">', raw)) >= 5  # the verdict table
    assert "https://" not in raw and "http://" not in raw


def test_fold_and_experiment_sections_when_present(run_dir, tmp_path):
    folded = tmp_path / "folded"
    assert main(["fold", str(run_dir), "--out", str(folded)]) == 0
    (fold,) = [r for r in read_metrics(folded) if r["event"] == "fold"]
    fig = Figure()
    fig.subplots().plot([0, 1], [1, 0])
    result = ExperimentResult(name="demo", title="A demo comparison", settings={"steps": 3},
                              columns=[Column("variant", "variant"), Column("loss", "loss")],
                              rows=[{"variant": "a", "loss": 2.5}, {"variant": HOSTILE, "loss": 3.25}],
                              findings=["variant a wins"], figures={"curve": lambda: fig})
    write_outputs(result, folded)
    raw = build_report(folded)
    assert "BatchNorm folding" in raw and f"{fold['max_abs_diff']:.4g}" in raw
    assert "A demo comparison" in raw and "variant a wins" in raw and ">3.25<" in raw
    assert raw.count("data:image/png;base64,") >= 2  # the loss curve and the experiment's figure
    assert HOSTILE not in raw
    assert "Diagnostics" not in raw  # the folded run has no diagnostics records: the section is omitted


def test_missing_run_is_one_line_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main(["report", str(tmp_path)]) == 2  # an empty folder: nothing to report
    assert "no run files" in capsys.readouterr().err


def test_metrics_file_is_required_only_for_the_loss_section(run_dir, tmp_path):
    (tmp_path / SAMPLES).write_text((run_dir / SAMPLES).read_text())
    raw = build_report(tmp_path)
    assert "Samples" in raw and "Losses" not in raw and METRICS not in raw
