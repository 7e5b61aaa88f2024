"""Typed settings for every stage, saved beside the weights and loaded back equal.

`EncodingConfig` fixes the vocabulary (and so must travel with a checkpoint),
`ModelConfig` fixes the network, `TrainConfig` the optimisation and data feed,
`SampleConfig` the sampler. `RunConfig` bundles the first three; it is what
`config.json` in a checkpoint folder holds. Every class round-trips through
`to_dict`/`from_dict`, and an unknown key is an error (a typo in a --config file
must not be silently ignored).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T", bound="_Config")
DISTRIBUTE_MODES = ("none", "mirrored", "multi-worker")  # TrainConfig.distribute
# EncodingConfig.name's choices: the names of musicgen.encoding.REGISTRY (what each
# encoding can do is asked of its class there, never of this list)
ENCODINGS = ("remi", "tracks", "steps", "performance")
# config.json keys beside the RunConfig sections (a checkpoint's config.json is a valid
# --config file: these are not settings and are left out)
METADATA_KEYS = ("vocab_size", "encoding_name", "versions", "data", "started_from")
# What `train --from` keeps of its source checkpoint: the encoding (the vocabulary) and the
# network's shape (the weights'); training settings and dropout may change
FIXED_BY_SOURCE = ("encoding", "model.cell", "model.layers", "model.units", "model.embedding_dim")


def setting(default: Any, help: str, **option: Any) -> Any:
    """A dataclass field that is also a `musicgen train` option (one place for a setting:
    its default, its help and its range or choices; cli.py builds the option from it).
    option: low/high (inclusive unless low_open/high_open), choices, flag (the option's
    name when it is not the field's, e.g. "encoding" for EncodingConfig.name)."""
    return field(default=default, metadata={"option": {"help": help, **option}})


@dataclass(frozen=True)
class TrainOption:
    """One `musicgen train` option, read off a RunConfig field (see `setting`)."""

    name: str  # the flat settings key (`RunConfig.with_flat`) and the option's name
    default: Any
    kind: type  # bool, int, float or str
    help: str
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False


def train_options() -> list[TrainOption]:
    """Every RunConfig setting that `musicgen train` (and `musicgen.train`) takes, in
    declaration order: encoding, then model, then training."""
    out = []
    for cls in (EncodingConfig, ModelConfig, TrainConfig):
        defaults = cls()
        for f in dataclasses.fields(cls):
            option = dict(f.metadata.get("option") or {})
            if not option:
                continue
            name = option.pop("flag", f.name)
            default = getattr(defaults, f.name)
            out.append(TrainOption(name, default, type(default), **option))
    return out


class ConfigError(ValueError):
    """A setting is unknown or out of range."""


class _Config:
    """Mixin: dict/JSON round trip with unknown keys rejected."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} key(s): {', '.join(unknown)}")
        kwargs = {}
        for name, value in data.items():
            sub = _nested_type(cls, name)
            kwargs[name] = sub.from_dict(value) if sub is not None else value
        obj = cls(**kwargs)
        obj.validate()
        return obj

    def replace(self: T, **changes: Any) -> T:
        obj = dataclasses.replace(self, **changes)  # type: ignore[type-var]
        obj.validate()
        return obj

    def validate(self) -> None:  # overridden where there is something to check
        pass


def _nested_type(cls: type, name: str) -> type[_Config] | None:
    hint = {f.name: f.type for f in dataclasses.fields(cls)}[name]
    for candidate in (EncodingConfig, ModelConfig, TrainConfig):
        if hint in (candidate, candidate.__name__):
            return candidate
    return None


def read_json_object(path: str | Path) -> dict[str, Any]:
    """The JSON object in a file; ConfigError (one line naming the file) otherwise."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"cannot read {path}: not a JSON object")
    return raw


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


@dataclass
class EncodingConfig(_Config):
    """How music becomes tokens. The vocabulary is a function of these alone."""

    # "steps" (beat grid, every part's sounding notes where they change), "tracks" (beat
    # grid, every note with its duration at its onset; what accompany/infill/harmonize
    # need), "remi" (one merged part; musicgen 0.2's default) or "performance" (10 ms)
    name: str = setting(
        "steps",
        "Token encoding (steps: beat grid, each part's sounding notes wherever they change; tracks: beat grid, each note's duration at its onset, which accompany, infill and harmonize need; remi: one merged part; performance: 10 ms expressive timing).",
        choices=ENCODINGS,
        flag="encoding",
    )
    pitch_min: int = 21  # lowest pitch kept (A0); notes outside are dropped and counted
    pitch_max: int = 108  # highest pitch kept (C8)
    velocity_bins: int = 16  # velocities 1..127 quantized into this many bins
    # remi
    steps_per_quarter: int = 4  # grid resolution: 4 = sixteenth notes
    max_duration_quarters: int = 8  # longest note in quarters; longer notes are clipped
    max_bar_quarters: int = 8  # longest bar (quarters) the Position tokens can address
    tempo_bins: int = 32  # tempo tokens, log-spaced between tempo_min and tempo_max
    tempo_min: float = 40.0  # beats per minute
    tempo_max: float = 240.0
    # Key_* and Density_* control tokens after every Bar (remi only). False keeps the
    # vocabulary of checkpoints made before controls existed (config.json lacks the key).
    controls: bool = setting(
        False,
        "Open every bar with key and density tokens, so that `generate --key --density` can steer the model (steps, tracks or remi).",
    )
    # performance
    time_shift_ms: int = 10  # one time-shift step in milliseconds
    max_shift_steps: int = 100  # longest single time shift (100 x 10 ms = 1 s)
    include_drums: bool = False  # keep drum tracks (merged into the one stream)
    # tracks
    max_parts: int = 16  # parts a piece may have (more merge into the nearest program's)

    def validate(self) -> None:
        """ConfigError for a setting out of range. What the settings ask of the named
        encoding (controls need a beat grid) is `musicgen.encoding.check_config`'s."""
        _check(self.name in ENCODINGS, f"unknown encoding {self.name!r}")
        _check(0 <= self.pitch_min <= self.pitch_max <= 127, "pitch range must lie in 0..127")
        _check(1 <= self.velocity_bins <= 127, "velocity_bins must be 1..127")
        _check(1 <= self.steps_per_quarter <= 48, "steps_per_quarter must be 1..48")
        _check(self.max_duration_quarters >= 1, "max_duration_quarters must be >= 1")
        _check(self.max_bar_quarters >= 1, "max_bar_quarters must be >= 1")
        _check(self.tempo_bins >= 1 and 0 < self.tempo_min < self.tempo_max, "bad tempo bins")
        _check(self.time_shift_ms >= 1 and self.max_shift_steps >= 1, "bad time shift")
        _check(1 <= self.max_parts <= 64, "max_parts must be 1..64")


@dataclass
class ModelConfig(_Config):
    """The network: embedding -> stacked recurrent layers -> logits."""

    # "gru" or "lstm". GRU by default: at equal size and budget it reached a 15-25% lower
    # validation loss than the LSTM in every comparison measured (checkpoints/README.md:
    # 2 x 256, 8 epochs on midi_corpus, 1.065 against 1.333 nats/token; 2 x 384: 1.046
    # against 1.247), with fewer weights and faster steps. The usual LSTM remedies are
    # already Keras's defaults here (forget-gate bias 1, Glorot/orthogonal init, dropout
    # between layers only, as for the GRU). A check on 120 chorales (2 x 128, batch 32 x
    # 128, 4 x 100 steps, best val loss in nats/token): GRU 1.200; LSTM 1.451; LSTM
    # without dropout 1.646; LSTM at twice the rate 1.339. So the LSTM learns more slowly
    # per step (a higher rate closes half the gap, dropout is not the cause); no LSTM
    # setting tried reached the GRU. `--cell lstm` still trains and loads as before.
    cell: str = setting("gru", "Recurrent cell.", choices=("lstm", "gru"))
    layers: int = setting(
        2, "Stacked recurrent layers.", low=1, high=16
    )  # number of stacked recurrent layers
    units: int = setting(
        256, "Units per recurrent layer.", low=1, high=8192
    )  # units per recurrent layer
    embedding_dim: int = setting(
        128, "Token embedding size.", low=1, high=8192
    )  # token embedding size
    dropout: float = setting(
        0.2,
        "Dropout after each layer at the start; it rises (up to --max-dropout) when validation stalls while the training loss still falls.",
        low=0,
        high=1,
        high_open=True,
    )  # dropout between layers at the start of a run (0 disables)
    # whole-token input noise (the embedding of a token zeroed, not single features):
    # the network must fill in a token it cannot see from the context, as it must in
    # music it never heard
    token_dropout: float = setting(
        0.0,
        "Share of input tokens hidden from the network while training.",
        low=0,
        high=1,
        high_open=True,
    )  # share of input tokens whose embedding is zeroed while training (0 disables)
    # the instrument family of the part each token is in, as a second input
    # (encoding/parts.py): a training window rarely holds the header that names the parts
    part_programs: bool = setting(
        True,
        "Tell the network which instrument each token belongs to (encodings with parts).",
    )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        # a config.json written before part_programs existed: its network had none
        return super().from_dict({"part_programs": False, **data})

    def validate(self) -> None:
        _check(self.cell in ("lstm", "gru"), f"cell must be lstm or gru, not {self.cell!r}")
        _check(1 <= self.layers <= 16, "layers must be 1..16")
        _check(1 <= self.units <= 8192, "units must be 1..8192")
        _check(1 <= self.embedding_dim <= 8192, "embedding_dim must be 1..8192")
        _check(0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)")
        _check(0.0 <= self.token_dropout < 1.0, "token_dropout must be in [0, 1)")


@dataclass
class TrainConfig(_Config):
    """Optimisation and data feed."""

    seq_len: int = setting(
        128, "Tokens per training window.", low=2, high=100_000
    )  # tokens per training window (targets at every position)
    batch_size: int = setting(64, "Windows per step.", low=1)  # windows per step
    # The budget comes from the data and from validation: an epoch is one pass over the
    # training tokens but at least min_steps_per_epoch steps (so that a small folder gets
    # enough updates between two validations); training ends when validation has not
    # improved for `patience` epochs, after `max_minutes`, or at the `epochs` cap.
    epochs: int = setting(
        500, "Most epochs to train (a cap: --patience and --max-minutes end sooner).", low=1
    )  # cap only; patience or the time budget end a run sooner
    steps_per_epoch: int = setting(
        0,
        "Steps per epoch; 0 = one pass over the training tokens, but at least --min-steps-per-epoch.",
        low=0,
    )  # 0 = one pass over the training tokens, >= min_steps_per_epoch
    min_steps_per_epoch: int = setting(
        200, "Fewest steps of an epoch when --steps-per-epoch is 0 (small folders).", low=1
    )  # with steps_per_epoch 0: the fewest steps of an epoch
    # Wall-clock budget of one `train` call in minutes (0 = none), checked between steps;
    # the epoch in progress is then validated and saved. The learning rate falls over its
    # last quarter (callbacks.budget_anneal). 60: a default run on a 2-core CPU ends
    # within the hour (the default model learns most of what it can on a folder of
    # chorales by then); on a GPU early stopping usually comes first.
    max_minutes: float = setting(
        60.0,
        "Time budget of this run in minutes (0 = none); the epoch in progress is then validated and saved.",
        low=0,
    )
    learning_rate: float = setting(
        2e-3,
        "Adam's learning rate after the warm-up; halved when validation stalls, and brought down over the last quarter of --max-minutes.",
        low=0,
        low_open=True,
    )  # Adam's peak rate (callbacks.scheduled_rate)
    warmup_steps: int = setting(
        100, "Raise the learning rate linearly over the first N steps.", low=0
    )  # linear warm-up of the rate over the first steps (0 = none)
    lr_patience: int = setting(
        2, "Halve the learning rate after N epochs without validation progress (0 = never).", low=0
    )  # halve the rate after this many epochs without 0.1% progress
    # How far dropout may rise during a run (callbacks.plateau_answers): a stall of
    # validation while the training loss still falls is answered by more dropout rather
    # than a lower rate, up to this (at or below `dropout`, or with dropout 0: never).
    max_dropout: float = setting(
        0.5,
        "Dropout rises by 0.15 at a validation stall while the training loss still falls, up to this (at or below --dropout, or with --dropout 0: never).",
        low=0,
        high=1,
        high_open=True,
    )  # the ceiling of dropout's rises during a run
    weight_decay: float = setting(
        0.0,
        "Decoupled weight decay (AdamW): each step shrinks the weights by rate x this (0 disables).",
        low=0,
    )  # decoupled weight decay, a multiple of the learning rate (0 disables)
    # The weights validated and kept: an exponential moving average of the weights
    # over about this many epochs of steps (callbacks.AveragedWeights; 0: the weights
    # as trained). last.weights.h5 keeps the trained ones, for --resume.
    average_epochs: float = setting(
        0.0,
        "Validate and keep a moving average of the weights over about N epochs (0: the weights as trained).",
        low=0,
    )
    clip_norm: float = setting(
        1.0, "Global gradient-norm clip (0 disables).", low=0
    )  # global gradient-norm clip (0 disables)
    val_fraction: float = setting(
        0.1,
        "Share of files held out for validation (split by file).",
        low=0,
        high=1,
        high_open=True,
    )  # share of files held out for validation (split by file)
    transpose: int = setting(
        5, "Random transposition of each window within +-N semitones.", low=0, high=24
    )  # random transposition of each window in [-t, +t] semitones
    # With part_programs: this share of the training windows is fed without the part
    # features (feed.py), so the network also learns to hear an instrument from its notes
    # instead of leaning on the feature to learn the training songs by heart. Off by
    # default: on band_corpus 0.5 gave 5-7% lower held-out nats per quarter note (the
    # bundled band model uses it), measured on no other folder (checkpoints/README.md,
    # "Half the windows without it").
    hide_parts: float = setting(
        0.0,
        "Share of training windows that are not told each token's instrument (with --part-programs).",
        low=0,
        high=1,
    )
    patience: int = setting(
        8,
        "After N epochs without validation improvement, anneal the rate over 3 epochs, then stop at the next epoch without improvement (0 = never).",
        low=0,
    )  # early stopping (callbacks.settling): epochs without validation improvement (0 = never)
    seed: int = setting(
        0, "One seed for the split, the data feed and the weights."
    )  # one seed for the split, the data feed and the weights
    mixed_precision: bool = setting(
        False, "float16 compute on a GPU (ignored on CPU)."
    )  # float16 compute on GPU
    device: str = setting(
        "auto", "auto uses a GPU when TensorFlow sees one.", choices=("auto", "cpu", "gpu")
    )  # "auto", "cpu" or "gpu"
    # "none" (one device), "mirrored" (every GPU of this machine, or its logical CPUs) or
    # "multi-worker" (several machines, cluster from TF_CONFIG); batch_size is the global
    # batch, split evenly across the replicas
    distribute: str = setting(
        "none",
        "mirrored: every GPU of this machine (or its CPU devices); multi-worker: several machines, cluster in $TF_CONFIG. --batch-size is the global batch.",
        choices=DISTRIBUTE_MODES,
    )

    def validate(self) -> None:
        _check(2 <= self.seq_len <= 100_000, "seq_len must be 2..100000")
        _check(1 <= self.batch_size <= 1_000_000, "batch_size must be >= 1")
        _check(1 <= self.epochs <= 1_000_000, "epochs must be >= 1")
        _check(self.steps_per_epoch >= 0, "steps_per_epoch must be >= 0")
        _check(self.min_steps_per_epoch >= 1, "min_steps_per_epoch must be >= 1")
        _check(self.max_minutes >= 0, "max_minutes must be >= 0")
        _check(self.learning_rate > 0, "learning_rate must be > 0")
        _check(self.warmup_steps >= 0, "warmup_steps must be >= 0")
        _check(self.lr_patience >= 0, "lr_patience must be >= 0")
        _check(self.clip_norm >= 0, "clip_norm must be >= 0")
        _check(self.weight_decay >= 0, "weight_decay must be >= 0")
        _check(self.average_epochs >= 0, "average_epochs must be >= 0")
        _check(0.0 <= self.max_dropout < 1.0, "max_dropout must be in [0, 1)")
        _check(0.0 <= self.val_fraction < 1.0, "val_fraction must be in [0, 1)")
        _check(0 <= self.transpose <= 24, "transpose must be 0..24")
        _check(0.0 <= self.hide_parts <= 1.0, "hide_parts must be in [0, 1]")
        _check(self.patience >= 0, "patience must be >= 0")
        _check(self.device in ("auto", "cpu", "gpu"), "device must be auto, cpu or gpu")
        _check(
            self.distribute in DISTRIBUTE_MODES,
            f"distribute must be one of {', '.join(DISTRIBUTE_MODES)}, not {self.distribute!r}",
        )


@dataclass
class RunConfig(_Config):
    """Everything a checkpoint needs to rebuild its model and read any MIDI file."""

    encoding: EncodingConfig = field(default_factory=EncodingConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> None:
        self.encoding.validate()
        self.model.validate()
        self.train.validate()

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json_file(cls, path: str | Path) -> RunConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def with_flat(self, flat: dict[str, Any]) -> RunConfig:
        """Apply flat settings named as on the command line (`units`, `seq_len`,
        `learning-rate`, `encoding` for the encoding's name, ...).

        Nested keys (`{"model": {...}}`) are accepted too, so a checkpoint's
        config.json is itself a valid --config file.
        """
        parts = {
            "encoding": self.encoding.to_dict(),
            "model": self.model.to_dict(),
            "train": self.train.to_dict(),
        }
        for raw_key, value in flat.items():
            key = raw_key.replace("-", "_")
            if key in parts and isinstance(value, dict):
                parts[key].update(value)
            elif key == "encoding":
                parts["encoding"]["name"] = value
            else:
                owners = [name for name, d in parts.items() if key in d and key != "name"]
                if not owners:
                    raise ConfigError(f"unknown setting {raw_key!r}")
                parts[owners[0]][key] = value
        return RunConfig.from_dict(parts)


def read_settings_file(path: str | Path) -> dict[str, Any]:
    """The settings of a --config JSON file (flat or nested keys, as `with_flat` takes
    them), the METADATA_KEYS left out. ConfigError "cannot read PATH: ..." otherwise."""
    raw = read_json_object(path)
    return {k: v for k, v in raw.items() if k not in METADATA_KEYS}


def resolve_settings(
    defaults: RunConfig | None = None,
    checkpoint: RunConfig | None = None,
    config_file: Mapping[str, Any] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> RunConfig:
    """The settings of a training run, each layer over the one before:
    defaults (RunConfig() when None) < the checkpoint's config.json (on --resume; with
    --from, `fine_tune_settings` of the source's) < a --config file's settings
    (`read_settings_file`) < flags (given explicitly).

    The checkpoint replaces the defaults whole; the file and the flags change only
    the keys they name (flat, e.g. `units`, `seq-len`, or nested sections).
    ConfigError for an unknown key or a value out of range."""
    config = checkpoint if checkpoint is not None else defaults or RunConfig()
    try:
        for layer in (config_file, flags):
            if layer:
                config = config.with_flat(dict(layer))
    except TypeError as exc:  # a section given as something else than an object
        raise ConfigError(str(exc)) from exc
    return config


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts (e.g. `model.units`)."""
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(prefix + key)
    return keys


def shape_changes(source: RunConfig, config: RunConfig) -> list[str]:
    """The settings of `config` that differ from `source`'s where `train --from` must keep
    them (`FIXED_BY_SOURCE`: the vocabulary and the weights' shapes)."""
    changed = changed_keys(source.to_dict(), config.to_dict())
    return [k for k in changed if any(k == f or k.startswith(f + ".") for f in FIXED_BY_SOURCE)]


class FineTuneError(ConfigError):
    """`train --from` asked to change what it keeps: `settings` names the options (as
    `units`, `encoding`), and the message has a `{name}` field for each and for
    `from_checkpoint` and `dropout`, for errors.param to fill in each side's words."""

    def __init__(self, message: str, settings: list[str]):
        super().__init__(message)
        self.settings = settings


def check_fine_tune(source: RunConfig, config: RunConfig, name: str) -> None:
    """FineTuneError (one line) when `config` would change what `train --from {name}`
    keeps of its source (`shape_changes`)."""
    changed = shape_changes(source, config)
    if changed:
        settings = sorted({_flag(key) for key in changed})
        fields = ", ".join("{" + setting + "}" for setting in settings)
        raise FineTuneError(
            f"{{from_checkpoint}} {name} keeps its network and vocabulary: leave out {fields} "
            f"(training settings and {{dropout}} may change)",
            settings,
        )


def _flag(key: str) -> str:
    """The `train` option of a dotted settings key (`model.units` -> units)."""
    return "encoding" if key == "encoding.name" else key.rsplit(".", 1)[-1]


# `train --from`: the learning rate as a share of the source's. Learning a small folder on
# top of a trained model wants smaller steps than learning from scratch: the weights are
# already near a good place, and a small folder is learned by heart within a few passes.
# From checkpoints/band on 10 band songs it never saw, scored on 5 others after the same
# 50 steps, a tenth did best of a thirtieth, a tenth, a third and the whole rate (the
# whole rate did worse than the source itself); measured on a busy 2-core CPU.
FINE_TUNE_RATE_SHARE = 0.1
FINE_TUNE = {  # the rest of a fine-tuning run's budget (each a `musicgen train` option)
    "max_minutes": 10.0,  # a small folder is learned in minutes; the best epoch is kept
    "min_steps_per_epoch": 50,  # a few passes over a 30-song folder between validations
    "warmup_steps": 50,  # the optimizer starts afresh: its moment estimates need a few steps
    "patience": 4,  # a small folder overfits soon: stop 4 epochs after the best
    "lr_patience": 1,  # halve the rate after one epoch without progress
}


def fine_tune_settings(source: RunConfig) -> RunConfig:
    """The settings `train --from` starts from: the source checkpoint's encoding, model
    (dropout included) and data feed (window, batch, transposition, clipping, split
    share), the source's learning rate x FINE_TUNE_RATE_SHARE and a budget for a small
    folder (`FINE_TUNE`); where to run (device, distribute, mixed precision), the seed
    and the epoch cap are the defaults', not the source machine's."""
    defaults = TrainConfig()
    train = dataclasses.replace(
        source.train,
        learning_rate=source.train.learning_rate * FINE_TUNE_RATE_SHARE,
        steps_per_epoch=0,
        epochs=defaults.epochs,
        seed=defaults.seed,
        device=defaults.device,
        distribute=defaults.distribute,
        mixed_precision=defaults.mixed_precision,
        **FINE_TUNE,
    )
    return RunConfig(encoding=source.encoding, model=source.model, train=train)


@dataclass
class SampleConfig(_Config):
    """How `generate` turns logits into tokens."""

    temperature: float = 1.0  # divide logits by this; < 1 is safer, > 1 wilder (the CLI uses 0.8)
    top_k: int = 0  # keep the k most likely tokens (0 = all)
    top_p: float = 1.0  # keep the smallest set with this much probability (1 = all)
    seed: int = 0

    def validate(self) -> None:
        _check(self.temperature > 0, "temperature must be > 0")
        _check(self.top_k >= 0, "top_k must be >= 0")
        _check(0.0 < self.top_p <= 1.0, "top_p must be in (0, 1]")
