"""The bundle contract: manifest schema and validation, and the ONE tensor-naming scheme.

Both the exporter (svg_export) and the runtime import `graph_io`, so the names of every graph's
inputs and outputs, and which output feeds which input at the next step, are defined here only.
Recurrent state is named `{module}_{h|c}` going in and `{module}_{h|c}_next` coming out
(`state_name`); the predicted frame `x_next` becomes the next step's `x_prev`; decoder features
are `skip_{i}`; an action-conditioned model's `condition` and `step` take `action` (B, A) in the
user's units (the graphs normalise it). The parsers (`is_skip`, `skip_index`, `lstm_part`,
`feedback`) are the only code that reads a name back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from svg_runtime.errors import SVGRuntimeError
from svg_runtime.kinds import ModelKind

FORMAT = "svg-video-bundle"
SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
BATCH_AXIS = "batch"  # the symbolic name of axis 0 of every input and output
GRAPHS = ("encoder", "posterior", "prior", "predictor", "decoder", "condition", "step")
RUNTIME_GRAPHS = ("encoder", "condition", "step")  # what the Predictor loads
LSTM_MODULES = ("posterior", "prior", "predictor")
ACTION = "action"  # the input name of an action (B, A) in condition and step


@dataclass(frozen=True)
class ModelSpec(ModelKind):
    """What the runtime needs to know about the model: the manifest's `model` and `skips`."""

    kind: str
    image_size: int
    channels: int
    g_dim: int
    z_dim: int
    rnn_size: int
    posterior_layers: int
    prior_layers: int
    predictor_layers: int
    last_frame_skip: bool
    skips: tuple[tuple[int, int, int], ...]  # (C, H, W) of each encoder feature map, shallow to deep
    action_dim: int = 0  # 0: an unconditional model
    action_prior: bool = True  # the learned prior sees the action too
    action_mean: tuple[float, ...] = ()  # the graphs normalise actions to (a - mean) / std
    action_std: tuple[float, ...] = ()
    action_names: tuple[str, ...] = ()

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> ModelSpec:
        m = manifest["model"]
        return cls(kind=m["kind"], image_size=m["image_size"], channels=m["channels"], g_dim=m["g_dim"],
                   z_dim=m["z_dim"], rnn_size=m["rnn_size"], posterior_layers=m["posterior_layers"],
                   prior_layers=m["prior_layers"], predictor_layers=m["predictor_layers"],
                   last_frame_skip=m["last_frame_skip"], skips=tuple(tuple(s) for s in manifest["skips"]),
                   action_dim=m.get("action_dim", 0), action_prior=m.get("action_prior", True),
                   action_mean=tuple(m.get("action_mean", ())), action_std=tuple(m.get("action_std", ())),
                   action_names=tuple(m.get("action_names", ())))

    @property
    def latent_dim(self) -> int:
        """Size of eps and z per step: z_dim, or 0 for the deterministic model."""
        return self.z_dim if self.has_latent else 0

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    def lstms(self) -> dict[str, int]:
        """The recurrent modules present in this model kind and their layer counts."""
        out = {}
        if self.has_latent:
            out["posterior"] = self.posterior_layers
        if self.has_prior:
            out["prior"] = self.prior_layers
        out["predictor"] = self.predictor_layers
        return out

    def graphs(self) -> tuple[str, ...]:
        """The graphs a bundle of this model kind holds."""
        skip = {"lp": (), "fp": ("prior",), "det": ("posterior", "prior")}[self.kind]
        return tuple(g for g in GRAPHS if g not in skip)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]  # per-sample shape: the full shape is (batch, *shape)
    dtype: str = "float32"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": [BATCH_AXIS, *self.shape], "dtype": self.dtype}


@dataclass(frozen=True)
class GraphIO:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]


def state_name(module: str, part: str, next: bool = False) -> str:
    """Name of an LSTM state tensor: `prior_h`, or `prior_h_next` for the value after the step."""
    return f"{module}_{part}_next" if next else f"{module}_{part}"


def skip_name(i: int) -> str:
    return f"skip_{i}"


def is_skip(name: str) -> bool:
    return name.startswith("skip_") and name[5:].isdigit()


def skip_index(name: str) -> int:
    """i of `skip_{i}`."""
    if not is_skip(name):
        raise SVGRuntimeError(f"{name!r} is not a skip tensor name")
    return int(name[5:])


def lstm_part(name: str) -> tuple[str, str] | None:
    """(module, "h" | "c") of an LSTM state name such as `prior_h` (or `prior_h_next`), else None."""
    base = name.removesuffix("_next")
    module, _, part = base.rpartition("_")
    return (module, part) if module in LSTM_MODULES and part in ("h", "c") else None


def feedback(output_name: str) -> str | None:
    """The input a step output feeds at the next step (`x_next` -> `x_prev`), or None."""
    if output_name == "x_next":
        return "x_prev"
    return output_name.removesuffix("_next") if output_name.endswith("_next") else None


def _lstm_io(spec: ModelSpec, modules: list[str], next: bool = False) -> list[TensorSpec]:
    layers = spec.lstms()
    return [TensorSpec(state_name(m, part, next), (layers[m], spec.rnn_size))
            for m in modules for part in ("h", "c")]


def state_specs(spec: ModelSpec) -> tuple[TensorSpec, ...]:
    """Tensors a runtime State carries: the last frame, the decoder's skips (unless the step
    recomputes them from x_prev, with last_frame_skip) and every LSTM's h and c."""
    skips = [] if spec.last_frame_skip else [TensorSpec(skip_name(i), s) for i, s in enumerate(spec.skips)]
    return (TensorSpec("x_prev", spec.frame_shape), *skips, *_lstm_io(spec, list(spec.lstms())))


def graph_io(spec: ModelSpec, graph: str) -> GraphIO:
    """Inputs and outputs, in order, of one graph of a bundle (see docs/design.md, the bundle contract)."""
    g, z = (spec.g_dim,), (spec.z_dim,)
    skips = [TensorSpec(skip_name(i), s) for i, s in enumerate(spec.skips)]
    action = [TensorSpec(ACTION, (spec.action_dim,))] if spec.has_actions else []
    gauss = [TensorSpec(n, z) for n in ("z", "mu", "logvar")]
    if graph == "encoder":
        return GraphIO((TensorSpec("x", spec.frame_shape),), (TensorSpec("h", g), *skips))
    if graph in ("posterior", "prior"):
        prior_action = action if graph == "prior" and spec.prior_takes_action else []
        return GraphIO((TensorSpec("h", g), *prior_action, *_lstm_io(spec, [graph]), TensorSpec("eps", z)),
                       (*gauss, *_lstm_io(spec, [graph], next=True)))
    if graph == "predictor":  # input = [h, z, normalised action]
        width = spec.g_dim + spec.latent_dim + spec.action_dim
        return GraphIO((TensorSpec("input", (width,)), *_lstm_io(spec, ["predictor"])),
                       (TensorSpec("g", g), *_lstm_io(spec, ["predictor"], next=True)))
    if graph == "decoder":
        return GraphIO((TensorSpec("g", g), *skips), (TensorSpec("x", spec.frame_shape),))
    if graph == "condition":  # one observed transition: posterior mean, prior and predictor stepped
        lstms = list(spec.lstms())
        h_next = [TensorSpec("h_next", g)] if spec.has_latent else []
        return GraphIO((TensorSpec("h_prev", g), *h_next, *_lstm_io(spec, lstms), *action),
                       tuple(_lstm_io(spec, lstms, True)))
    if graph == "step":  # one sampled frame; FP takes z = eps, det has no latent
        stepped = [m for m in ("prior", "predictor") if m in spec.lstms()]
        eps = [TensorSpec("eps", z)] if spec.has_latent else []
        prior_out = [TensorSpec("mu", z), TensorSpec("logvar", z)] if spec.has_prior else []
        inputs = [t for t in state_specs(spec) if t.name == "x_prev" or is_skip(t.name)]
        return GraphIO((*inputs, *_lstm_io(spec, stepped), *eps, *action),
                       (TensorSpec("x_next", spec.frame_shape), *prior_out, *_lstm_io(spec, stepped, True)))
    raise SVGRuntimeError(f"unknown graph {graph!r}: bundles hold {', '.join(GRAPHS)}")


# --- validation: a small interpreter of the JSON-Schema subset that manifest.schema.json uses,
# so that the runtime needs no jsonschema package (the tests check that jsonschema agrees).

def load_schema() -> dict[str, Any]:
    return json.loads(resources.files("svg_runtime").joinpath("manifest.schema.json").read_text())


_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
          "integer": int, "number": (int, float)}


def _is(value: Any, type_name: str) -> bool:
    if type_name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[type_name])


def schema_errors(value: Any, schema: dict[str, Any], root: dict[str, Any], path: str = "$") -> list[str]:
    """Where value breaks schema (type, const, enum, required, properties, additionalProperties,
    items, min/maxItems, min/maxLength, minimum/maximum, $ref to #/$defs)."""
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        if not any(_is(value, t) for t in types):
            return [f"{path}: expected {' or '.join(types)}, got {type(value).__name__}"]
    errs = []
    if "const" in schema and value != schema["const"]:
        errs.append(f"{path}: expected {schema['const']!r}, got {value!r}")
    if "enum" in schema and value not in schema["enum"]:
        errs.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < schema.get("minimum", value) or value > schema.get("maximum", value):
            errs.append(f"{path}: {value} is out of range")
    if isinstance(value, (str, list)):
        lo, hi = (("minLength", "maxLength") if isinstance(value, str) else ("minItems", "maxItems"))
        if len(value) < schema.get(lo, 0) or len(value) > schema.get(hi, len(value)):
            errs.append(f"{path}: length {len(value)} is out of range")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errs += schema_errors(item, schema["items"], root, f"{path}[{i}]")
    if isinstance(value, dict):
        errs += [f"{path}: missing {key!r}" for key in schema.get("required", []) if key not in value]
        props, extra = schema.get("properties", {}), schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                errs += schema_errors(item, props[key], root, f"{path}.{key}")
            elif extra is False:
                errs.append(f"{path}: unexpected key {key!r}")
            elif isinstance(extra, dict):
                errs += schema_errors(item, extra, root, f"{path}.{key}")
    return errs


def validate_manifest(manifest: Any, where: str = "manifest") -> dict[str, Any]:
    """Check a manifest's version and structure; returns it, or raises SVGRuntimeError."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SVGRuntimeError(f"{where} is not an svg-video bundle manifest (no \"format\": \"{FORMAT}\")")
    version = manifest.get("schema_version")
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise SVGRuntimeError(f"{where} has schema version {version}, newer than this runtime reads "
                              f"({SCHEMA_VERSION}): upgrade with `pip install -U svg-video`")
    errs = schema_errors(manifest, load_schema(), load_schema())
    if errs:
        raise SVGRuntimeError(f"{where} is invalid ({'; '.join(errs[:5])}); re-export the bundle with `svg export`")
    for section in (manifest["graphs"], (manifest.get("tensorrt") or {}).get("engines", {})):
        for graph, entry in section.items():
            check_file_name(entry["file"], f"{where}: graph {graph!r}")
    spec = ModelSpec.from_manifest(manifest)
    missing = [g for g in spec.graphs() if g not in manifest["graphs"]]
    if missing:
        raise SVGRuntimeError(f"{where} lists no {', '.join(missing)} graph(s) for a {spec.kind} model: "
                              "re-export the bundle with `svg export`")
    return manifest


def check_file_name(name: str, where: str) -> None:
    """A manifest names files of its own directory only: no folders, `..` or absolute paths (a
    bundle from someone else must not make the runtime open any other file)."""
    if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise SVGRuntimeError(f"{where} points to {name!r}, outside the bundle: a bundle's graph files are plain "
                              "file names in its own directory; re-export the bundle with `svg export`")


def read_manifest(bundle: str | Path) -> dict[str, Any]:
    """Load and validate bundle/manifest.json with errors that say what is wrong."""
    path = Path(bundle) / MANIFEST_NAME
    if not Path(bundle).is_dir():
        raise SVGRuntimeError(f"no bundle directory at {bundle}: create one with `svg export RUN --out {bundle}`")
    if not path.is_file() or path.is_symlink():
        raise SVGRuntimeError(f"{bundle} has no {MANIFEST_NAME} (as a plain file): it is not a bundle or its "
                              "export did not finish; re-export it with `svg export`")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SVGRuntimeError(f"{path} is unreadable or corrupt ({e}); re-export the bundle") from e
    return validate_manifest(manifest, str(path))
