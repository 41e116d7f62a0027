"""The run directory's layout: the name of every file a run holds, defined here and nowhere else.

=======================  =========================================================================
``config.json``          format version, resolved model and train config, data source, command line
``vocab.json``           the characters at ids 1..V-1 (id 0 is the boundary)
``splits.json``          the train/dev/test items (novelty labels and ``eval`` need them)
``model.safetensors``    the best-dev weights and buffers (safetensors: loading never runs code)
``metrics.jsonl``        one JSON object a line: per-step train losses, dev evaluations, final losses
``samples.json``         samples drawn at the end of training, with novelty
``checkpoints/``         ``last.safetensors`` and ``best.safetensors``: exact-resume state
``diagnostics.jsonl``    records of ``train --diagnose``; ``diagnose.jsonl`` those of ``charlab diagnose``
``verdicts.json``        the verdicts of ``charlab diagnose``; ``figures/`` its figures
``tensorboard/``         TensorBoard event files (``train --tensorboard``)
``report.html``          ``charlab report``
=======================  =========================================================================
"""

from __future__ import annotations

FORMAT_VERSION = 1
CONFIG = "config.json"
VOCAB = "vocab.json"
SPLITS_FILE = "splits.json"
WEIGHTS = "model.safetensors"
METRICS = "metrics.jsonl"
SAMPLES = "samples.json"
REQUIRED = (CONFIG, VOCAB, SPLITS_FILE, WEIGHTS)
META_FILES = (CONFIG, VOCAB, SPLITS_FILE)  # written when training starts, so a killed run resumes


CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.safetensors"
BEST_CHECKPOINT = "best.safetensors"
DIAGNOSTICS = "diagnostics.jsonl"  # recorded while training (--diagnose)
DIAGNOSE_RECORDS = "diagnose.jsonl"  # written by `charlab diagnose`
VERDICTS = "verdicts.json"  # written by `charlab diagnose`
FIGURES_DIR = "figures"
TENSORBOARD_DIR = "tensorboard"
REPORT = "report.html"

# Inside a checkpoint (a safetensors file; written by training/checkpoint.py, read there and by store.py)
CHECKPOINT_FORMAT_VERSION = 1
CHECKPOINT_VERSION_KEY = "format_version"  # metadata: CHECKPOINT_FORMAT_VERSION as a string
CHECKPOINT_STATE_KEY = "state"  # metadata: JSON with train_state (step, best_step, evals), schedule, optimizer
CHECKPOINT_MODEL_PREFIX = "model."  # tensors: the weights and buffers at the checkpoint's step
CHECKPOINT_BEST_PREFIX = "best."  # tensors: the best-dev weights so far
