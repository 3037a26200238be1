"""Pretrained bundles shipped inside the package, resolved by name: `pretrained:NAME`.

    Predictor.load("pretrained:smmnist-1digit")
    svg rollout pretrained:smmnist-1digit --context clip.gif --out out.gif

Each bundle is a directory svg_runtime/pretrained/NAME/ written by `svg export`, plus a
model_card.json (how it was trained and how well it does). Loading needs no torch and no network.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from svg_runtime.errors import SVGRuntimeError

PREFIX = "pretrained:"
CARD_NAME = "model_card.json"


def pretrained_root() -> Path:
    """The directory that holds the shipped bundles (package data of svg_runtime)."""
    return Path(str(resources.files("svg_runtime") / "pretrained"))


def available() -> list[str]:
    """Names of the shipped pretrained bundles, sorted."""
    root = pretrained_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "manifest.json").is_file())


def is_pretrained(spec: str | Path) -> bool:
    return str(spec).startswith(PREFIX)


def resolve_bundle(spec: str | Path) -> Path:
    """The bundle directory of `spec`: a path as given, or the shipped bundle of `pretrained:NAME`."""
    if not is_pretrained(spec):
        return Path(spec)
    name = str(spec)[len(PREFIX):]
    names = available()
    if name not in names:
        listed = ", ".join(PREFIX + n for n in names) or "none (this install ships no pretrained bundles)"
        raise SVGRuntimeError(f"unknown pretrained bundle {name!r}: available are {listed}")
    return pretrained_root() / name


def model_card(spec: str | Path) -> dict[str, Any]:
    """The model card of a bundle (`pretrained:NAME` or a directory); {} when it has none."""
    path = resolve_bundle(spec) / CARD_NAME
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SVGRuntimeError(f"{path} is unreadable ({e}); reinstall svg-video or re-export the bundle") from e
