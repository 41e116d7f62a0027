"""Figures render under Agg from saved records alone, as PNG and SVG."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import charlab  # noqa: E402
from charlab.diagnostics import plots  # noqa: E402
from charlab.diagnostics.recorder import Recorder, read_records  # noqa: E402
from charlab.rundir import DIAGNOSTICS  # noqa: E402
from charlab.diagnostics.sampling import SampleSchedule  # noqa: E402


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Records written by a short training, read back from disk (the model is gone)."""
    out = tmp_path_factory.mktemp("run")
    rec = Recorder(schedule=SampleSchedule(every=5, dense=2), out=out, probe=True)
    result = charlab.train(preset="mlp-bn", steps=12, n_samples=0, observers=[rec], eval_interval=1000)
    return read_records(out / DIAGNOSTICS), result.summary()


@pytest.mark.slow
def test_each_figure_renders_with_the_lecture_content(saved):
    records, _ = saved
    fig = plots.plot_activations(records)
    assert isinstance(fig, Figure)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert len(labels) == 1 and "Tanh" in labels[0] and "saturated" in labels[0]
    assert "grad:data" in plots.plot_weight_gradients(records).axes[0].get_legend().get_texts()[0].get_text()
    update = plots.plot_update_ratio(records)
    assert any(list(line.get_ydata()) == [-3.0, -3.0] for line in update.axes[0].lines)  # the 1e-3 guide
    assert len(plots.plot_gradients(records).axes[0].lines) == 1
    image = plots.plot_saturation_map(records).axes[0].images[0].get_array()
    assert image.shape == (32, 200)
    for fig in (plots.plot_activations(records, step=5), plots.plot_loss([3.3, 3.0, 2.8, 2.7] * 50)):
        fig.canvas.draw()  # rendering under Agg raises on any drawing error


def test_loss_curve_averages_windows_in_log10():
    fig = plots.plot_loss([10.0] * 10 + [100.0] * 10, windows=2)
    assert list(fig.axes[0].lines[0].get_ydata()) == pytest.approx([1.0, 2.0])


@pytest.mark.slow
def test_draw_all_writes_png_and_svg(saved, tmp_path):
    records, _ = saved
    paths = plots.draw_all(records, [3.3, 3.1, 2.9], tmp_path)
    names = {p.name for p in paths}
    for stem in ("activations", "gradients", "weight_gradients", "update_ratio", "loss", "saturation_map"):
        assert {f"{stem}.png", f"{stem}.svg"} <= names
    assert all(p.stat().st_size > 0 for p in paths)
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert b"<svg" in (tmp_path / "loss.svg").read_bytes()[:400]


def test_no_step_records_is_a_clear_error():
    with pytest.raises(ValueError, match="no step records"):
        plots.plot_activations([{"kind": "meta", "layers": []}])
