"""Diagnostics: see inside training.

Three concerns kept apart (DESIGN.md): *quantities* (pure statistic functions with named
thresholds), *recording* (an observer that hooks the model only on sampled steps and writes raw
values as JSON lines) and *drawing* (figures made from the saved records alone). ``health`` turns
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
