"""Labelled pictures: video grids (GIF frames) and time grids (PNG) carry row and column labels."""

from __future__ import annotations

import numpy as np

from svg_runtime.media import time_grid, video_grid

H = W = 16


def _videos(n_rows: int = 2, n_cols: int = 3, n_t: int = 4) -> np.ndarray:
    return np.random.default_rng(0).random((n_rows, n_cols, n_t, 1, H, W)).astype(np.float32)


def _greenish(block: np.ndarray) -> bool:
    r, g, b = (block[..., i].astype(int) for i in range(3))
    return bool(((g - r > 60) & (g - b > 60)).any())


def _inked(block: np.ndarray) -> bool:
    return bool((block.max(axis=-1) < 120).any())


def test_unlabelled_grid_is_unchanged():
    plain = video_grid(_videos(), marked=1)
    assert plain.shape == (4, 2 * (H + 2) + 2, 3 * (W + 2) + 2, 3)


def test_video_grid_labels_rows_columns_and_frames():
    plain = video_grid(_videos(), marked=2)
    labelled = video_grid(_videos(), marked=2, row_labels=["video 1", "video 2"],
                          col_labels=["ground truth", "sample 1", "sample 2"])
    n_t, h, w, _ = labelled.shape
    top, left = h - plain.shape[1], w - plain.shape[2]
    assert n_t == 4 and top > 10 and left > 20
    np.testing.assert_array_equal(labelled[:, top:, left:], plain)  # the tiles themselves are untouched
    assert _inked(labelled[0, top:, :left]) and _inked(labelled[0, :top, left:])  # row and column labels
    # the caption is green on conditioning frames, dark on predicted ones
    caption = slice(0, top // 2)
    assert _greenish(labelled[0, caption]) and _greenish(labelled[1, caption])
    assert not _greenish(labelled[2, caption]) and _inked(labelled[2, caption])
    assert not np.array_equal(labelled[0, caption], labelled[1, caption])  # "frame 1" vs "frame 2"


def test_time_grid_numbers_frames_and_marks_conditioning():
    videos = _videos(n_rows=1, n_cols=2, n_t=6)
    plain = time_grid(videos, marked=2)
    labelled = time_grid(videos, marked=2, variant_labels=["ground truth", "sample 1"])
    top, left = labelled.shape[0] - plain.shape[0], labelled.shape[1] - plain.shape[1]
    np.testing.assert_array_equal(labelled[top:, left:], plain)
    header = labelled[top // 2:top - 1, left:]  # the frame-number line
    column = W + 2
    assert _greenish(header[:, 2:2 * column]) and not _greenish(header[:, 2 * column + 2:])
    assert all(_inked(header[:, k * column + 2:(k + 1) * column]) for k in range(2, 6))
    assert _inked(labelled[top:top + H, :left]) and _inked(labelled[top + H + 2:, :left])
