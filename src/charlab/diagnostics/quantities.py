"""The quantities the lecture teaches, as pure functions of tensors (no hooks, no state, no I/O).

Every function reduces on the tensor's own device and returns tensors, so a recorder can stack many
of them and copy to the CPU once. Thresholds are named constants with their reason.
"""

from __future__ import annotations

import torch

from charlab.models.base import expected_init_loss  # noqa: F401  (-ln(1/V), re-exported here)

SATURATION_THRESHOLD = 0.97  # lecture: a tanh output this close to ±1 passes almost no gradient (1 - t² < 0.06)
DEAD_THRESHOLD = 0.99  # lecture: a tanh unit beyond this on *every* example never learns (1 - t² < 0.02)
HIST_BINS = 50  # enough resolution for the lecture's distribution plots, small enough for JSON lines
HIST_RANGE_STDS = 4.0  # histogram range: mean ± 4 std covers the distribution without outliers stretching it
MIN_HALF_RANGE = 1e-5  # x (|mean| + 1): a constant tensor still gets a range float32 can resolve


def std(t: torch.Tensor) -> torch.Tensor:
    """Standard deviation over all elements (unbiased, as ``torch.std``; 0 for a single element)."""
    t = t.detach().float()
    if t.numel() < 2:
        return torch.zeros((), device=t.device)
    return t.std()


def saturation_fraction(t: torch.Tensor, threshold: float = SATURATION_THRESHOLD) -> torch.Tensor:
    """Fraction of elements with ``|t| > threshold`` (meaningful for bounded activations such as tanh)."""
    return (t.detach().abs() > threshold).float().mean()


def histogram(t: torch.Tensor, bins: int = HIST_BINS, range_stds: float = HIST_RANGE_STDS,
              mean: torch.Tensor | None = None,
              spread: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Density histogram over mean ± ``range_stds`` std: (lo, hi, density (bins,)).

    Built with ``scatter_add_`` rather than ``torch.histc`` so the range never leaves the device
    (``histc`` wants Python floats, a host sync per call). Values outside the range are not counted;
    the density integrates to the fraction inside it. ``mean``/``spread`` may be passed if known.
    """
    t = t.detach().float().flatten()  # (N,)
    mean = t.mean() if mean is None else mean
    spread = std(t) if spread is None else spread
    half = torch.maximum(spread * range_stds, MIN_HALF_RANGE * (mean.abs() + 1))
    lo, hi = mean - half, mean + half
    width = (hi - lo) / bins
    idx = torch.floor((t - lo) / width).long().clamp(0, bins - 1)  # (N,) bin of each value; hi goes in the last
    inside = ((t >= lo) & (t <= hi)).float()  # (N,)
    counts = torch.zeros(bins, device=t.device).scatter_add_(0, idx, inside)  # (bins,)
    return lo, hi, counts / (t.numel() * width)


def bin_centres(lo: float, hi: float, n_bins: int) -> list[float]:
    """Centres of ``n_bins`` equal bins on [lo, hi] (for drawing a saved histogram)."""
    width = (hi - lo) / n_bins
    return [lo + width * (i + 0.5) for i in range(n_bins)]


def summary(t: torch.Tensor, bins: int = HIST_BINS, hist: bool = True) -> dict:
    """Count ``n`` (an int), mean, std and (unless ``hist=False``) a density histogram of all elements
    of ``t``, with the extremes and the counts left of and right of its range (``hist_below``,
    ``hist_above``): enough to rebuild a TensorBoard histogram. Tensors, still on t's device."""
    t = t.detach().float()
    out = {"n": t.numel(), "mean": t.mean(), "std": std(t)}
    if hist:
        out["hist_lo"], out["hist_hi"], out["hist"] = histogram(t, bins, mean=out["mean"], spread=out["std"])
        if t.numel():
            out["min"], out["max"] = t.min(), t.max()
            out["hist_below"], out["hist_above"] = (t < out["hist_lo"]).sum(), (t > out["hist_hi"]).sum()
    return out


def grad_data_ratio(grad: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``std(grad) / std(weight)``: how large a gradient step is relative to the weights it moves."""
    return std(grad) / std(weight)


def update_data_ratio(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """``std(after - before) / std(before)``: the change the optimizer actually made, relative to the
    parameter; right for SGD and AdamW alike. The lecture aims for about 1e-3 (log10 ≈ -3)."""
    before = before.detach().float()
    return std(after.detach().float() - before) / std(before)


def dead_units(h: torch.Tensor, threshold: float = DEAD_THRESHOLD) -> torch.Tensor:
    """Bool mask per unit (last dim): ``|h| > threshold`` on every example (all leading dims)."""
    h = h.detach()
    return (h.abs() > threshold).reshape(-1, h.shape[-1]).all(dim=0)  # (units,)


def saturation_map(h: torch.Tensor, threshold: float = DEAD_THRESHOLD) -> torch.Tensor:
    """The lecture's white-dots image: bool (examples, units) with ``|h| > threshold``."""
    h = h.detach()
    return h.abs().reshape(-1, h.shape[-1]) > threshold  # (N, units)
