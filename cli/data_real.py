"""`svg data kth | kth-test | bair | folder`: convert real datasets once into memory-mappable clip stores."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from svg_cli.common import fail_on_error
from svg_cli.data import data_app


@data_app.command("kth")
def kth(
    raw_dir: Annotated[Path, typer.Argument(help="Folder with the KTH personXX_action_dY_uncomp.avi files (any depth).")],
    out: Annotated[Path, typer.Option("--out", help="Directory to create (frames.npy + index.json).")],
    image_size: Annotated[int, typer.Option("--image-size", help="Frame size: 64 or 128.")] = 64,
    split: Annotated[Literal["svg", "savp"], typer.Option(help="svg: persons 1-20 train, 21-25 test (SVG, SRVP); "
                                                          "savp: 1-16 / 17-25 (SAVP, OpenSTL).")] = "svg",
    resize: Annotated[Literal["squash", "crop"], typer.Option(
        help="squash: 160x120 straight to a square with FFmpeg's bicubic scaler, as SVG/SRVP do; "
        "crop: center 120x120 crop first.")] = "squash",
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
    size: Annotated[int | None, typer.Option("--size", hidden=True, help="Old name of --image-size.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", hidden=True, help="Old name of --force.")] = False,
) -> None:
    """Convert the original KTH videos to gray frames at 64 or 128 pixels, with the split recorded."""
    with fail_on_error():
        from svg_core.data.kth import convert_kth

        size = size or image_size
        path = convert_kth(raw_dir, out, size=size, split=split, resize=resize, overwrite=force or overwrite,
                           progress=True)
        typer.echo(f"{_describe_store(path)} of {size}x{size} in {path}")


@data_app.command("kth-test")
def kth_test(
    store: Annotated[Path, typer.Argument(help="Directory written by `svg data kth`.")],
    out: Annotated[Path, typer.Option("--out", help="The .npz file to write.")],
    count: Annotated[int, typer.Option(help="Number of test clips.")] = 1000,
    length: Annotated[int, typer.Option(help="Frames per clip (10 conditioning + 30 predicted).")] = 40,
    seed: Annotated[int, typer.Option(help="Seed of the draws (42 is SRVP's).")] = 42,
) -> None:
    """Build the fixed KTH test set: clips of the test persons, drawn as SRVP's make_test_set.py does."""
    with fail_on_error():
        from svg_core.data.kth import write_kth_test_set

        path = write_kth_test_set(store, out, count=count, length=length, seed=seed)
        typer.echo(f"{count} clips of {length} frames (seed {seed}) in {path}")


@data_app.command("bair")
def bair(
    softmotion_dir: Annotated[Path, typer.Argument(help="Folder holding softmotion30_44k/{train,test}/*.tfrecords.")],
    out: Annotated[Path, typer.Option("--out", help="Directory to create (frames.npy, actions.npy, "
                                      "endeffector_pos.npy, index.json).")],
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", hidden=True, help="Old name of --force.")] = False,
) -> None:
    """Convert BAIR robot pushing TFRecords (no TensorFlow needed): 64x64 RGB frames, actions, positions."""
    with fail_on_error():
        from svg_core.data.bair import convert_bair

        path = convert_bair(softmotion_dir, out, overwrite=force or overwrite, progress=True)
        typer.echo(f"{_describe_store(path)} in {path}")


@data_app.command("folder")
def folder(
    path: Annotated[Path, typer.Argument(help="Folder of videos (mp4/avi/gif...), image folders or .npy/.npz.")],
    image_size: Annotated[int, typer.Option("--image-size", help="Frame size of the model: 64 or 128.")] = 64,
    size: Annotated[int | None, typer.Option("--size", hidden=True, help="Old name of --image-size.")] = None,
) -> None:
    """Decode a folder of videos into the cache now (`--dataset folder:PATH` would on first use)."""
    with fail_on_error():
        from svg_core.data.clips import load_index
        from svg_core.data.folder import prepare_folder

        store = prepare_folder(path, size or image_size, progress=True)
        index = load_index(store)
        lengths = [v["length"] for v in index["videos"]]
        kind = "gray" if index["channels"] == 1 else "RGB"
        typer.echo(f"{len(lengths)} {kind} videos, {sum(lengths)} frames (shortest {min(lengths)}), "
                   f"cached in {store}")


def _describe_store(path: Path) -> str:
    """'N videos (a train, b test), F frames' for a converted clip store."""
    from svg_core.data.clips import load_index

    index = load_index(path)
    n_train = sum(v["split"] == "train" for v in index["videos"])
    return f"{len(index['videos'])} videos ({n_train} train, {len(index['videos']) - n_train} test), {index['n_frames']} frames"
