"""Model and training options: one frozen dataclass each, validated before any work."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from svg_core.errors import SVGError
from svg_runtime.kinds import ModelKind

MODEL_KINDS = ("lp", "fp", "det")
BACKBONES = ("dcgan", "vgg")
IMAGE_SIZES = (64, 128)
AMP_MODES = ("none", "bf16", "fp16")
RECON_LOSSES = ("mse", "bce")


@dataclass(frozen=True)
class ModelConfig(ModelKind):
    """Architecture of an SVG model; saved with every checkpoint and enough to rebuild it."""

    kind: str = "lp"  # lp: learned prior, fp: fixed N(0, I) prior, det: no latent
    backbone: str = "dcgan"
    image_size: int = 64
    channels: int = 1
    width: int = 64  # base number of conv filters (the paper's nf = 64)
    g_dim: int = 128
    z_dim: int = 10
    rnn_size: int = 256
    posterior_layers: int = 1
    prior_layers: int = 1
    predictor_layers: int = 2
    last_frame_skip: bool = False
    # Action conditioning (0: the unconditional model of the paper). a_{t-1}, taken between frames
    # t-1 and t, joins the predictor's input [h, z, a] and, with action_prior, the prior's [h, a].
    action_dim: int = 0
    action_prior: bool = True
    action_mean: tuple[float, ...] = ()  # normalisation: the model sees (a - mean) / std
    action_std: tuple[float, ...] = ()
    action_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("action_mean", "action_std", "action_names"):  # JSON gives lists
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _check_actions(self)
        if self.kind not in MODEL_KINDS:
            raise SVGError(f"unknown model kind {self.kind!r}: choose one of {', '.join(MODEL_KINDS)}")
        if self.backbone not in BACKBONES:
            raise SVGError(f"unknown backbone {self.backbone!r}: choose one of {', '.join(BACKBONES)}")
        if self.image_size not in IMAGE_SIZES:
            raise SVGError(
                f"image size {self.image_size} is not supported by the {self.backbone} backbone: "
                f"use one of {IMAGE_SIZES} (resize your data with --image-size)"
            )
        for name in ("channels", "width", "g_dim", "z_dim", "rnn_size", "predictor_layers"):
            if getattr(self, name) < 1:
                raise SVGError(f"model option {name} must be >= 1, got {getattr(self, name)}")


def _check_actions(cfg: ModelConfig) -> None:
    if cfg.action_dim < 0:
        raise SVGError(f"action_dim must be >= 0, got {cfg.action_dim}")
    for name in ("action_mean", "action_std", "action_names"):
        n = len(getattr(cfg, name))
        if n not in (0, cfg.action_dim):
            raise SVGError(f"model option {name} has {n} values but action_dim is {cfg.action_dim}")
    if not all(s > 0 for s in cfg.action_std):
        raise SVGError(f"action_std must be > 0 in every dimension, got {list(cfg.action_std)}")


def action_normalisation(cfg: ModelConfig) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) of the model's actions: the stored statistics, or (0, 1) when none are stored."""
    mean = cfg.action_mean or (0.0,) * cfg.action_dim
    std = cfg.action_std or (1.0,) * cfg.action_dim
    return mean, std


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the model architecture."""

    dataset: str = "smmnist"
    n_past: int = 5
    n_future: int = 10
    batch_size: int = 100
    lr: float = 2e-3
    beta: float = 1e-4
    # > 0: pixels that change between consecutive true frames weigh 1 + motion_weight * |change| in
    # the reconstruction term (0: the paper's plain MSE). Small moving objects (a robot's end
    # effector: ~12 of 4,096 pixels) otherwise cost too little to be drawn at all.
    motion_weight: float = 0.0
    # Reconstruction term: "mse" (the paper) or "bce" (per-pixel binary cross-entropy, for data in
    # [0, 1] with a black background such as SM-MNIST: its gradient does not vanish as a background
    # pixel nears 0 through the sigmoid, so the haze that SSIM punishes goes away; a change of the loss)
    recon: str = "mse"
    warmup_steps: int = 0  # linear learning-rate warm-up from 0 (the paper: none)
    # The final fraction of the run over which the learning rate falls linearly to 0 (the paper: 0, a
    # constant rate). Adam at a constant 2e-3 plateaus with blurred digits; the decay sharpens them.
    lr_decay: float = 0.0
    # Start the decoder's sigmoid at the training data's mean pixel instead of 0.5 (a fix: see README)
    init_output_bias: bool = True
    steps: int = 100_000
    seed: int = 1
    num_digits: int = 2
    digits: str | None = None  # MNIST source: None (auto), a directory, "download" or "bundled"
    amp: str = "none"  # none | bf16 (CPU/GPU autocast) | fp16 (GPU autocast + GradScaler)
    compile: bool = False  # torch.compile the training step
    channels_last: bool = False  # NHWC conv layout (faster convolutions on GPUs with tensor cores)
    sync_bn: bool = False  # BatchNorm statistics over all processes' frames (multi-process runs)
    log_every: int = 10
    sample_every: int = 500
    checkpoint_every: int = 500
    num_workers: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.n_past < 1 or self.n_future < 1:
            raise SVGError(f"need n_past >= 1 and n_future >= 1, got {self.n_past} and {self.n_future}")
        if self.batch_size < 1 or self.steps < 1:
            raise SVGError(f"need --batch-size >= 1 and --steps >= 1, got {self.batch_size} and {self.steps}")
        for name in ("log_every", "sample_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise SVGError(f"--{name.replace('_', '-')} must be >= 1 (a step interval), got {getattr(self, name)}")
        if self.num_workers < 0:
            raise SVGError(f"--num-workers must be >= 0, got {self.num_workers}")
        if not 0.0 <= self.lr_decay <= 1.0:
            raise SVGError(f"--lr-decay is a fraction of the run's steps, in [0, 1]; got {self.lr_decay}")
        if self.recon not in RECON_LOSSES:
            raise SVGError(f"unknown recon loss {self.recon!r}: choose one of {', '.join(RECON_LOSSES)}")
        if self.amp not in AMP_MODES:
            raise SVGError(f"unknown --amp {self.amp!r}: choose one of {', '.join(AMP_MODES)}")
        if self.amp == "fp16" and not self.device.startswith("cuda"):
            raise SVGError("--amp fp16 needs a CUDA GPU (it uses a gradient scaler); on CPU use --amp bf16")

    @property
    def seq_len(self) -> int:
        return self.n_past + self.n_future


@dataclass(frozen=True)
class RunConfig:
    """A model and its training options: what a checkpoint's config.json holds."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return {"model": dataclasses.asdict(self.model), "train": dataclasses.asdict(self.train)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        if not isinstance(data, dict):
            raise SVGError(f"a config is a JSON object {{'model': {{...}}, 'train': {{...}}}}, got {type(data).__name__}")
        try:
            return cls(model=_build(ModelConfig, data.get("model", {})),
                       train=_build(TrainConfig, data.get("train", {})))
        except TypeError as e:
            raise SVGError(f"config does not match this version of svg-video: {e}") from e


# The JSON types each annotation accepts (bool is not an int here, an int is a float).
_JSON_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "str | None": (str, type(None))}
_JSON_LISTS = {"tuple[float, ...]": (int, float), "tuple[str, ...]": (str,)}  # JSON arrays of these


def _json_type_ok(annotation: str, value: Any) -> bool:
    if annotation in _JSON_LISTS:
        items = _JSON_LISTS[annotation]
        return isinstance(value, (list, tuple)) and all(
            isinstance(v, items) and not isinstance(v, bool) for v in value)
    allowed = _JSON_TYPES[annotation]
    return isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)


def _build(cls: type, values: Any) -> Any:
    if not isinstance(values, dict):
        raise SVGError(f"config: {cls.__name__} options must be a JSON object, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise SVGError(f"unknown {cls.__name__} option(s) {unknown}: known are {sorted(fields)}")
    for name, value in values.items():
        if not _json_type_ok(str(fields[name].type), value):
            raise SVGError(f"config option {name} must be {str(fields[name].type).replace(' | None', ' or null')}, "
                           f"got {value!r}: fix the config file")
    return cls(**values)


# Paper settings (sec. 4 and the authors' README) per dataset; `smmnist-small` is a CPU-sized
# variant (narrower backbone, shorter sequences) that learns visibly in minutes.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "smmnist": {
        "model": dict(backbone="dcgan", image_size=64, channels=1, z_dim=10),
        "train": dict(dataset="smmnist", n_past=5, n_future=10, batch_size=100, beta=1e-4),
    },
    "smmnist-small": {
        "model": dict(backbone="dcgan", image_size=64, channels=1, width=16, z_dim=10),
        "train": dict(dataset="smmnist", n_past=5, n_future=10, batch_size=32, beta=1e-4,
                      num_digits=1, amp="bf16", recon="bce", lr_decay=0.4, steps=3600),
    },
    # Action-conditioned Push-T (recorded with `svg data pusht`), sized for a CPU: its planning
    # calls roll out hundreds of futures per control step.
    "pusht-small": {
        "model": dict(backbone="dcgan", image_size=64, channels=3, width=8, g_dim=64, z_dim=8, rnn_size=128),
        "train": dict(dataset="pusht", n_past=2, n_future=8, batch_size=32, beta=1e-4, motion_weight=50.0),
    },
    "kth": {
        "model": dict(backbone="vgg", image_size=64, channels=1, z_dim=24),
        "train": dict(dataset="kth", n_past=10, n_future=10, batch_size=100, beta=1e-6),
    },
    "bair": {
        "model": dict(backbone="vgg", image_size=64, channels=3, z_dim=64),
        "train": dict(dataset="bair", n_past=2, n_future=10, batch_size=100, beta=1e-4),
    },
}


def preset(name: str, **overrides: Any) -> RunConfig:
    """The paper's configuration for a dataset, with a model kind and option overrides."""
    if name not in PRESETS:
        raise SVGError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    base = RunConfig.from_dict({"model": PRESETS[name]["model"], "train": PRESETS[name]["train"]})
    return with_overrides(base, **overrides)


def with_overrides(cfg: RunConfig, **overrides: Any) -> RunConfig:
    """cfg with the given model or train options replaced; None values are ignored."""
    data = cfg.to_dict()
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    for key, value in overrides.items():
        if value is not None:
            data["model" if key in model_fields else "train"][key] = value
    return RunConfig.from_dict(data)


# What a resumed run may change: how long and how fast it trains, where and how often it reports.
# Everything else (architecture, data, batch, precision, seed) defines the run and must match.
RESUMABLE_CHANGES = ("steps", "lr", "lr_decay", "log_every", "sample_every", "checkpoint_every", "num_workers", "device",
                     "compile", "channels_last")


def resume_config(saved: RunConfig, requested: dict[str, Any]) -> tuple[RunConfig, dict[str, tuple[Any, Any]]]:
    """The saved config of a run with the requested options applied, and what they changed.

    requested holds only the options the user gave (None values ignored); an option outside
    RESUMABLE_CHANGES that differs from the saved run's is refused, naming it."""
    current = {**saved.to_dict()["model"], **saved.to_dict()["train"]}
    changed = {k: (current[k], v) for k, v in requested.items() if v is not None and k in current and current[k] != v}
    unknown = sorted(k for k in requested if k not in current)
    if unknown:
        raise SVGError(f"unknown option(s) {unknown} for a resumed run")
    refused = sorted(k for k in changed if k not in RESUMABLE_CHANGES)
    if refused:
        diff = ", ".join(f"{k} {changed[k][0]!r} -> {changed[k][1]!r}" for k in refused)
        raise SVGError(f"--resume continues the run as it was saved; it cannot change {diff}. Drop these options, "
                       f"or start a new run with another --out (changeable: {', '.join(RESUMABLE_CHANGES)})")
    return with_overrides(saved, **{k: new for k, (_, new) in changed.items()}), changed
