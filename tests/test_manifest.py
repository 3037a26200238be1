"""The bundle contract: the schema, the runtime's own validator, and the naming scheme."""

from __future__ import annotations

import copy

import jsonschema
import pytest
from bundle_fixtures import get_bundle

from svg_runtime import SVGRuntimeError
from svg_runtime.manifest import (
    SCHEMA_VERSION,
    ModelSpec,
    feedback,
    graph_io,
    load_schema,
    schema_errors,
    state_name,
    state_specs,
    validate_manifest,
)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return get_bundle(tmp_path_factory, "lp").manifest


def _spec(kind: str, last_frame_skip: bool = False) -> ModelSpec:
    return ModelSpec(kind=kind, image_size=64, channels=1, g_dim=16, z_dim=4, rnn_size=32, posterior_layers=1,
                     prior_layers=1, predictor_layers=2, last_frame_skip=last_frame_skip,
                     skips=((4, 32, 32), (8, 16, 16), (16, 8, 8), (32, 4, 4)))


def test_schema_is_valid_and_exported_manifest_passes_both_validators(manifest):
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(manifest, schema)
    assert schema_errors(manifest, schema, schema) == []
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert validate_manifest(manifest) is manifest


def _set(doc: dict, path: str, value) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    target = doc
    for key in parents:
        target = target[key]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return doc


@pytest.mark.parametrize("path, value", [
    ("model", KeyError), ("model.kind", "gan"), ("model.z_dim", "4"), ("model.g_dim", 0),
    ("model.last_frame_skip", 1), ("precision", "int4"), ("export.opset", 21),
    ("checkpoint.sha256", "abc"), ("graphs.step.inputs", "x"), ("graphs.encoder", KeyError),
    ("parity.graphs.step.max_abs_err", -1.0), ("skips", [[4, 32]]), ("tensorrt", []),
])
def test_both_validators_reject_the_same_damage(manifest, path, value):
    bad = _set(manifest, path, value)
    schema = load_schema()
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    assert schema_errors(bad, schema, schema)
    with pytest.raises(SVGRuntimeError, match="invalid"):
        validate_manifest(bad)


def test_version_and_kind_checks(manifest):
    with pytest.raises(SVGRuntimeError, match="schema version 2, newer than this runtime reads"):
        validate_manifest({**manifest, "schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(SVGRuntimeError, match="not an svg-video bundle"):
        validate_manifest({"format": "something-else"})
    no_prior = copy.deepcopy(manifest)
    del no_prior["graphs"]["prior"]
    with pytest.raises(SVGRuntimeError, match="no prior graph"):
        validate_manifest(no_prior)


@pytest.mark.parametrize("kind", ["lp", "fp", "det"])
@pytest.mark.parametrize("last_frame_skip", [False, True])
def test_naming_scheme_closes_the_loop(kind, last_frame_skip):
    """Every recurrent output feeds a state tensor; every state input is produced by a graph."""
    spec = _spec(kind, last_frame_skip)
    state = {t.name: t for t in state_specs(spec)}
    for graph in ("step", "condition"):
        io = graph_io(spec, graph)
        for out in io.outputs:
            if out.name not in ("mu", "logvar"):
                assert feedback(out.name) in state and state[feedback(out.name)].shape == out.shape, out.name
        assert all(t.name in state or t.name in ("eps", "h_prev", "h_next") for t in io.inputs)
    step = graph_io(spec, "step")
    assert ("eps" in step.input_names) == (kind != "det")
    assert ("mu" in step.output_names) == (kind == "lp")
    assert any(n.startswith("skip_") for n in step.input_names) == (not last_frame_skip)
    assert state_name("prior", "h") == "prior_h" and feedback(state_name("prior", "h", next=True)) == "prior_h"
    assert feedback("x_next") == "x_prev" and feedback("mu") is None
    lstms = {"lp": {"posterior", "prior", "predictor"}, "fp": {"posterior", "predictor"}, "det": {"predictor"}}
    assert {n.rsplit("_", 1)[0] for n in state if n.endswith("_h")} == lstms[kind]
    assert graph_io(spec, "predictor").inputs[0].shape == (16 + (4 if kind != "det" else 0),)
    with pytest.raises(SVGRuntimeError, match="unknown graph"):
        graph_io(spec, "critic")
