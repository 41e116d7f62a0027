"""Every setting in one place: model and training config dataclasses, and the TOML presets.

Command-line flags are generated from these dataclasses (``cli/args.py``), presets are small TOML
files in ``presets/`` with ``[model]`` and ``[train]`` tables, and a run directory stores the
resolved config as JSON so that it rebuilds the model without executing code.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from importlib import resources

from charlab.errors import CharlabError

DEFAULT_PRESET = "mlp-bn"
DEFAULT_SEED = 42  # the lecture's split seed (random.seed(42)); it also drives init, batches, sampling


@dataclass
class ModelConfig:
    """What to build. ``vocab_size`` is filled in from the data, never set by hand."""

    model: str = field(default="mlp", metadata={
        "help": "registered model name (see `charlab models`); alone it starts from the preset of the same name, "
                "with --preset it keeps that preset's training settings and takes this model's own sizes"})
    block_size: int = field(default=3, metadata={
        "help": "context length in characters (window models); sequence models (rnn, gru, lstm, bow, transformer) "
                "take the data's longest item + 1 unless this is given"})
    n_embd: int = field(default=10, metadata={"help": "embedding dimension per character"})
    n_hidden: int = field(default=200, metadata={"help": "units per hidden layer"})
    n_layers: int = field(default=1, metadata={"help": "number of hidden layers"})
    norm: str = field(default="batchnorm", metadata={"help": "normalisation after each hidden Linear",
                                                     "choices": ("none", "batchnorm")})
    activation: str = field(default="tanh", metadata={"help": "hidden nonlinearity",
                                                      "choices": ("tanh", "none")})
    init: str = field(default="kaiming", metadata={
        "help": "initialisation scheme, named after the lecture's steps",
        "choices": ("naive", "fix-softmax", "fix-tanh", "kaiming", "zero")})
    gain: float = field(default=5 / 3, metadata={"help": "kaiming gain of hidden layers (5/3 for tanh)"})
    bn_momentum: float = field(default=0.1, metadata={"help": "BatchNorm running-statistics momentum"})
    bn_eps: float = field(default=1e-5, metadata={"help": "BatchNorm epsilon added to the variance"})
    n_head: int = field(default=4, metadata={"help": "attention heads per transformer block (divides --n-embd)"})
    dropout: float = field(default=0.0, metadata={
        "help": "dropout probability in the transformer and on rnn/gru/lstm inputs and outputs (0: off)"})
    recurrent_dropout: float = field(default=0.0, metadata={
        "help": "rnn/gru/lstm: dropout of h_{t-1} where it enters the gates, one mask per sequence (0: off)"})
    members: int = field(default=1, metadata={
        "help": "train this many independently initialised copies and average their predicted "
                "probabilities (an ensemble); copy k learns from the k-th of this many slices of each "
                "batch, so --batch-size is the total"})
    smoothing: float = field(default=1.0, metadata={
        "help": "add-k smoothing of the count bigram: k fake counts per pair (1: the lecture's)"})
    vocab_size: int = field(default=0, metadata={"help": None})


@dataclass
class TrainConfig:
    """How to train: the optimizer, its schedule and the evaluation cadence."""

    steps: int = field(default=200_000, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=32, metadata={"help": "examples per step"})
    optimizer: str = field(default="sgd", metadata={"help": "optimizer", "choices": ("sgd", "adamw")})
    lr: float = field(default=0.1, metadata={"help": "peak learning rate"})
    schedule: str = field(default="step", metadata={
        "help": "step: x0.1 at --decay-at of the steps (the lecture's); plateau: x0.1 after "
                "--patience evaluations without dev improvement; cosine: warmup then cosine; constant",
        "choices": ("step", "plateau", "cosine", "constant")})
    decay_at: float = field(default=0.5, metadata={"help": "fraction of steps at which 'step' decays"})
    decay_factor: float = field(default=0.1, metadata={"help": "learning-rate factor of each decay"})
    patience: int = field(default=3, metadata={"help": "evaluations without improvement before a plateau decay"})
    warmup_steps: int = field(default=0, metadata={"help": "linear warmup steps (cosine schedule)"})
    min_lr_frac: float = field(default=0.0, metadata={"help": "cosine floor as a fraction of --lr"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW decoupled weight decay"})
    grad_clip: float = field(default=0.0, metadata={"help": "clip the gradient norm to this (0: off)"})
    length_buckets: int = field(default=0, metadata={
        "help": "sequence models: draw each batch from one of this many equal groups of items sorted by length "
                "(less padding, so faster: README \"Speed\"; every item still drawn with probability 1/N, every "
                "character weighted alike in expectation); 0: uniform batches"})
    eval_interval: int = field(default=10_000, metadata={"help": "steps between dev evaluations"})
    checkpoint_interval: int = field(default=0, metadata={
        "help": "extra checkpoints every this many steps; 0: checkpoints only at each evaluation, at the end "
                "and on SIGINT/SIGTERM (always written then)"})
    seed: int = field(default=DEFAULT_SEED, metadata={"help": "one seed for split, init, batches"})
    split_seed: int | None = field(default=None, metadata={
        "type": int, "help": "seed of the train/dev/test split alone (default: --seed), so that runs over "
                             "several --seed values share one split (charlab sweep, experiment --seeds)"})
    threads: int = field(default=1, metadata={
        "help": "torch CPU threads; 1 is fastest for the lecture's small matrices"})
    fast_path: str = field(default="auto", metadata={
        "help": "how a step is computed, all the same math (losses equal to float rounding: "
                "training/hand_backward.py). auto: the fastest that applies (the hand-derived backward pass for "
                "the window models, its SGD steps compiled for long SGD runs while eager steps train, autograd "
                "otherwise); off: autograd; eager: the hand-derived pass (window models, any optimizer); compile: "
                "that pass with 4 SGD steps per torch.compile graph, compiled before training (SGD without "
                "clipping; cached on disk: README \"Speed\")",
        "choices": ("auto", "off", "eager", "compile")})
    device: str = field(default="auto", metadata={
        "help": "where to train; auto: cuda if available, else mps, else cpu (the run records the choice)",
        "choices": ("auto", "cpu", "cuda", "mps")})
    split: str = field(default="charlab", metadata={
        "help": "charlab: 80/10/10 shuffled by --seed; makemore: makemore's seed-3407 permutation, its "
                "1,000 test items, dev = the 1,000 items before them (see splits.py)",
        "choices": ("charlab", "makemore")})


SECTIONS = {"model": ModelConfig, "train": TrainConfig}


def split_seed_of(train: TrainConfig) -> int:
    """The seed that shuffles the items into train/dev/test: ``split_seed``, or ``seed`` when unset."""
    return train.seed if train.split_seed is None else train.split_seed


def presets_dir():
    return resources.files("charlab") / "presets"


def preset_names() -> list[str]:
    return sorted(p.name.removesuffix(".toml") for p in presets_dir().iterdir() if p.name.endswith(".toml"))


def load_preset(name: str) -> tuple[ModelConfig, TrainConfig]:
    """Defaults overlaid with the preset's ``[model]`` and ``[train]`` tables."""
    path = presets_dir() / f"{name}.toml"
    if not path.is_file():
        raise CharlabError(f"unknown preset {name!r}; choose one of: {', '.join(preset_names())}")
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    return from_dict(doc)


def starting_config(preset: str | None = None, model: str | None = None
                    ) -> tuple[ModelConfig, TrainConfig, dict[str, str]]:
    """The configuration before any flag, and where each setting comes from.

    Training settings come from ``preset`` (default: the preset named after ``model`` when there is
    one, else ``DEFAULT_PRESET``); model settings from the preset named after ``model`` when ``model``
    is not the preset's own model (``--preset best --model gru``: best's training, gru's sizes), else
    from ``preset``. Returns both configs and ``{setting: "preset NAME"}`` for every field, so an error
    about a setting the user did not type can say where its value came from.
    """
    names = preset_names()
    if preset is None:
        preset = model if model in names else DEFAULT_PRESET
    model_cfg, train_cfg = load_preset(preset)
    model_preset = preset
    if model is not None and model != model_cfg.model and model in names:
        model_cfg, _ = load_preset(model)
        model_preset = model
    sources = {f.name: f"preset {model_preset}" for f in dataclasses.fields(ModelConfig)}
    sources.update({f.name: f"preset {preset}" for f in dataclasses.fields(TrainConfig)})
    return model_cfg, train_cfg, sources


def from_dict(doc: dict) -> tuple[ModelConfig, TrainConfig]:
    """Configs from ``{"model": {...}, "train": {...}}``; unknown keys are an error, not ignored."""
    built = []
    for section, cls in SECTIONS.items():
        values = doc.get(section, {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise CharlabError(f"unknown {section} setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        built.append(cls(**values))
    return built[0], built[1]


def to_dict(model: ModelConfig, train: TrainConfig) -> dict:
    return {"model": dataclasses.asdict(model), "train": dataclasses.asdict(train)}


POSITIVE_INT = {"block_size", "n_embd", "n_hidden", "n_layers", "batch_size", "eval_interval", "threads", "n_head"}
NON_NEGATIVE = {"steps", "warmup_steps", "weight_decay", "grad_clip", "patience", "min_lr_frac", "smoothing",
                "checkpoint_interval"}


def validate(model: ModelConfig, train: TrainConfig) -> None:
    """Reject settings that cannot train, naming the setting and a valid range."""
    for cfg in (model, train):
        for f in dataclasses.fields(cfg):
            value = getattr(cfg, f.name)
            flag = "--" + f.name.replace("_", "-")
            if f.name in POSITIVE_INT and value < 1:
                raise CharlabError(f"{flag} must be at least 1, got {value}")
            if f.name in NON_NEGATIVE and value < 0:
                raise CharlabError(f"{flag} must not be negative, got {value}")
            choices = (f.metadata or {}).get("choices")
            if choices and value not in choices:
                raise CharlabError(f"{flag} must be one of {', '.join(choices)}, got {value!r}")
    if not train.lr > 0:
        raise CharlabError(f"--lr must be positive, got {train.lr}")
    if not 0 < train.decay_factor <= 1:
        raise CharlabError(f"--decay-factor must be in (0, 1], got {train.decay_factor}")
    if not 0 <= train.decay_at <= 1:
        raise CharlabError(f"--decay-at must be in [0, 1], got {train.decay_at}")
    if not 0 < model.bn_momentum <= 1:
        raise CharlabError(f"--bn-momentum must be in (0, 1], got {model.bn_momentum}")
    if not model.bn_eps > 0:
        raise CharlabError(f"--bn-eps must be positive, got {model.bn_eps}")
    if model.norm == "batchnorm" and train.batch_size < 2:
        raise CharlabError(f"--batch-size must be at least 2 with BatchNorm (it normalises over the batch), "
                           f"got {train.batch_size}; or pass --norm none")
    if train.split_seed is not None and (isinstance(train.split_seed, bool) or not isinstance(train.split_seed, int)):
        raise CharlabError(f"--split-seed must be an integer, got {train.split_seed!r}")
    if train.length_buckets < 0:
        raise CharlabError(f"--length-buckets must be 0 (off) or positive, got {train.length_buckets}")
    if model.members < 1:
        raise CharlabError(f"--members must be at least 1, got {model.members}")
    if train.batch_size < model.members:
        raise CharlabError(f"--batch-size must be at least --members ({model.members}): each member learns "
                           f"from its own slice of the batch; got {train.batch_size}")
    for name in ("dropout", "recurrent_dropout"):
        if not 0 <= getattr(model, name) < 1:
            raise CharlabError(f"--{name.replace('_', '-')} must be in [0, 1), got {getattr(model, name)}")
