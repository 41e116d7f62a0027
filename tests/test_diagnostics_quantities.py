"""Every statistic against its direct formula on known tensors; the sampling schedule."""

from __future__ import annotations

import math

import pytest
import torch

from charlab.diagnostics import quantities as q
from charlab.diagnostics.sampling import SampleSchedule


def test_saturation_fraction_counts_strictly_above_threshold():
    t = torch.tensor([0.0, 0.5, 0.97, 0.98, -0.99, 1.0, -0.2, 0.96])
    assert q.saturation_fraction(t).item() == pytest.approx(3 / 8)  # 0.98, -0.99, 1.0; 0.97 is not > 0.97
    assert q.saturation_fraction(t, threshold=0.4).item() == pytest.approx(6 / 8)
    assert q.SATURATION_THRESHOLD == 0.97


def test_summary_mean_std_match_torch_and_histogram_matches_histc():
    t = torch.randn(40, 25, generator=torch.Generator().manual_seed(0)) * 3 + 1
    s = q.summary(t)
    assert s["mean"].item() == pytest.approx(t.mean().item())
    assert s["std"].item() == pytest.approx(t.std().item())
    lo, hi = s["hist_lo"].item(), s["hist_hi"].item()
    assert lo == pytest.approx(t.mean().item() - q.HIST_RANGE_STDS * t.std().item(), rel=1e-5)
    width = (hi - lo) / q.HIST_BINS
    expected = torch.histc(t, bins=q.HIST_BINS, min=lo, max=hi) / (t.numel() * width)
    assert torch.allclose(s["hist"], expected, atol=1e-6)
    inside = ((t >= lo) & (t <= hi)).float().mean().item()
    assert (s["hist"].sum() * width).item() == pytest.approx(inside, rel=1e-5)  # density integrates to the fraction


def test_histogram_of_a_constant_is_finite():
    s = q.summary(torch.full((10,), 2.0))
    assert s["std"].item() == 0.0
    assert torch.isfinite(s["hist"]).all()


def test_grad_data_ratio_is_std_over_std():
    g = torch.tensor([[1.0, -1.0], [3.0, 5.0]])
    w = torch.tensor([[0.5, 2.0], [-4.0, 1.0]])
    assert q.grad_data_ratio(g, w).item() == pytest.approx(g.std().item() / w.std().item())


def test_update_data_ratio_is_std_of_change_over_std_of_before():
    before = torch.tensor([1.0, 2.0, 3.0, 4.0])
    after = torch.tensor([1.1, 1.9, 3.3, 4.0])
    direct = torch.std(after - before).item() / torch.std(before).item()
    assert q.update_data_ratio(before, after).item() == pytest.approx(direct)
    assert q.update_data_ratio(before, before).item() == 0.0


def test_dead_units_requires_saturation_on_every_example():
    h = torch.tensor([[0.995, 0.2, -0.999, 0.991],
                      [-0.995, 0.999, -0.999, 0.5],
                      [0.999, 0.3, 1.0, 0.995]])  # (examples, units)
    assert q.dead_units(h).tolist() == [True, False, True, False]
    assert q.DEAD_THRESHOLD == 0.99
    seq = h.reshape(3, 1, 4).expand(3, 2, 4)  # (B, T, units): every position counts as an example
    assert q.dead_units(seq).tolist() == [True, False, True, False]


def test_saturation_map_marks_each_cell():
    h = torch.tensor([[0.995, 0.2], [0.0, -1.0]])
    assert q.saturation_map(h).tolist() == [[True, False], [False, True]]


def test_expected_init_loss_is_minus_log_one_over_v():
    assert q.expected_init_loss(27) == pytest.approx(-math.log(1 / 27))


def test_bin_centres():
    assert q.bin_centres(0.0, 1.0, 4) == pytest.approx([0.125, 0.375, 0.625, 0.875])


def test_schedule_dense_then_every_k_and_last_step():
    s = SampleSchedule(every=10, dense=3)
    assert s.steps(25) == [0, 1, 2, 10, 20, 24]
    assert SampleSchedule(every=1, dense=0).steps(4) == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        SampleSchedule(every=0)
