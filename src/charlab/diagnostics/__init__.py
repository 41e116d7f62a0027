"""Diagnostics: see inside training.

Three concerns kept apart (DESIGN.md): *quantities* (pure statistic functions with named
thresholds), *recording* (one observer, ``recorder.Recorder``, that hooks the model only on sampled
steps and hands its records of raw values to sinks: JSON lines, TensorBoard) and *drawing* (figures
made from the saved records alone). ``health`` turns
records into verdicts that name a cause and a fix.
"""

from charlab.diagnostics.quantities import DEAD_THRESHOLD, SATURATION_THRESHOLD, dead_units, grad_data_ratio, saturation_fraction, summary, update_data_ratio

__all__ = [
    "DEAD_THRESHOLD",
    "SATURATION_THRESHOLD",
    "dead_units",
    "grad_data_ratio",
    "saturation_fraction",
    "summary",
    "update_data_ratio",
]
