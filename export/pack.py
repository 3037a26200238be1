"""Pack an exported bundle for shipping inside the package: shared, deduplicated fp16 weights.

    python -m svg_export.pack BUNDLE OUT

`svg export` writes self-contained graphs, so the seven graphs of an SVG-LP bundle repeat the same
weights (the step graph holds the encoder, prior, predictor and decoder again): 32 MB for the
`smmnist-small` model, 12.6 MB of it unique. Packing stores every distinct weight tensor once, in
fp16, in one external-data file `weights.bin` that all graphs reference (ONNX external data), and
puts a Cast to fp32 in front of each: onnxruntime folds the Casts when it opens a session, so the
graphs compute in fp32 with fp16-rounded weights. The graphs' inputs, outputs and names do not
change; the runtime needs no change. The packed bundle is checked against the source bundle on a
5 -> 20 rollout with the same eps, and the result recorded in manifest["packing"].
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from svg_runtime import Predictor
from svg_runtime.backends import sha256_file
from svg_runtime.manifest import MANIFEST_NAME

WEIGHTS_NAME = "weights.bin"
MIN_EXTERNAL_BYTES = 1024  # smaller tensors (biases, shapes) stay inside the graph
ALIGN = 4096  # onnxruntime can memory-map page-aligned external data


class _Store:
    """The shared weights file: each distinct byte string once, at a page-aligned offset."""

    def __init__(self) -> None:
        self.blob = bytearray()
        self.offsets: dict[str, int] = {}

    def add(self, data: bytes) -> int:
        key = hashlib.sha256(data).hexdigest()
        if key not in self.offsets:
            self.blob.extend(b"\0" * (-len(self.blob) % ALIGN))
            self.offsets[key] = len(self.blob)
            self.blob.extend(data)
        return self.offsets[key]


def _pack_graph(model: onnx.ModelProto, store: _Store, half: bool) -> None:
    """Rewrite the graph's large initializers in place: fp16 + Cast (if half), stored in `store`."""
    graph, inits, casts = model.graph, [], []
    for init in graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.nbytes < MIN_EXTERNAL_BYTES:
            inits.append(init)
            continue
        if half and arr.dtype == np.float32:
            stored = numpy_helper.from_array(arr.astype(np.float16), f"{init.name}__fp16")
            casts.append(helper.make_node("Cast", [stored.name], [init.name], to=TensorProto.FLOAT,
                                          name=f"{init.name}__cast"))
        else:
            stored = numpy_helper.from_array(arr, init.name)
        data = stored.raw_data
        offset = store.add(data)
        stored.ClearField("raw_data")
        stored.data_location = TensorProto.EXTERNAL
        for key, value in (("location", WEIGHTS_NAME), ("offset", str(offset)), ("length", str(len(data)))):
            entry = stored.external_data.add()
            entry.key, entry.value = key, value
        inits.append(stored)
    del graph.initializer[:]
    graph.initializer.extend(inits)
    for i, node in enumerate(casts):  # Casts first: the graph stays topologically sorted
        graph.node.insert(i, node)


def _rollout_error(src: Path, dst: Path) -> dict[str, float]:
    """Max and mean abs difference of a 5 -> 20 rollout (2 videos x 2 samples, same eps)."""
    rng = np.random.default_rng(0)
    a, b = Predictor.load(src, threads=1), Predictor.load(dst, threads=1)
    context = (rng.random((2, 5, *a.spec.frame_shape)) > 0.9).astype(np.float32)
    spec, kw, ctx_kw = a.spec, {}, {}
    if spec.has_actions:  # the training data's spread of actions, one candidate sequence
        mean, std = np.asarray(spec.action_mean or 0.0), np.asarray(spec.action_std or 1.0)
        ctx_kw["actions"] = (mean + std * rng.standard_normal((2, 4, spec.action_dim))).astype(np.float32)
        kw["actions"] = (mean + std * rng.standard_normal((2, 1, 20, spec.action_dim))).astype(np.float32)
    lead = (2, 1, 2) if spec.has_actions else (2, 2)
    eps = rng.standard_normal((*lead, 20, spec.latent_dim), dtype=np.float32)
    fa = a.sample(a.observe(context, **ctx_kw), n_samples=2, horizon=20, eps=eps, **kw).frames
    fb = b.sample(b.observe(context, **ctx_kw), n_samples=2, horizon=20, eps=eps, **kw).frames
    err = np.abs(fa - fb)
    return {"context": 5, "horizon": 20, "max_abs_err": float(err.max()), "mean_abs_err": float(err.mean())}


def pack_bundle(src: str | Path, dst: str | Path, half: bool = True) -> dict[str, Any]:
    """Write a packed copy of bundle `src` to `dst` (replaced if it exists); returns its manifest."""
    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise ValueError("pack into another directory than the source bundle")
    manifest = json.loads((src / MANIFEST_NAME).read_text())
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    t0, store = time.perf_counter(), _Store()
    for entry in manifest["graphs"].values():
        model = onnx.load(src / entry["file"])
        _pack_graph(model, store, half)
        onnx.save(model, dst / entry["file"])
    (dst / WEIGHTS_NAME).write_bytes(bytes(store.blob))
    for entry in manifest["graphs"].values():
        entry["sha256"] = sha256_file(dst / entry["file"])
    manifest["packing"] = {"weights": WEIGHTS_NAME, "weights_sha256": sha256_file(dst / WEIGHTS_NAME),
                           "dtype": "float16" if half else "float32", "seconds": 0.0}
    (dst / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    manifest["packing"]["rollout_vs_source"] = _rollout_error(src, dst)
    manifest["packing"]["seconds"] = round(time.perf_counter() - t0, 2)
    (dst / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description="Pack an exported bundle: shared, deduplicated fp16 weights.")
    ap.add_argument("bundle", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--fp32", action="store_true", help="Keep fp32 weights (only deduplicate).")
    a = ap.parse_args()
    m = pack_bundle(a.bundle, a.out, half=not a.fp32)
    size = sum(p.stat().st_size for p in a.out.iterdir() if p.is_file())
    print(f"wrote {a.out}: {size / 2**20:.2f} MiB; rollout vs source {m['packing']['rollout_vs_source']}")


if __name__ == "__main__":
    main()
