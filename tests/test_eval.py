"""The evaluation protocol's bookkeeping, trajectory tools, reproducibility and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from svg_cli.app import app
from svg_core.checkpoint import save_checkpoint
from svg_core.config import ModelConfig, RunConfig, TrainConfig
from svg_core.data import SMMNISTConfig, load_npz, make_test_set, save_npz
from svg_core.errors import SVGError
from svg_core.evaluation import trajectories as tr
from svg_core.evaluation.metrics import PSNR_CAP_DB, psnr, ssim
from svg_core.evaluation.protocol import (
    EvalOptions,
    curve_summary,
    evaluate,
    interval,
    pairwise_mse,
    select_samples,
)
from svg_core.evaluation.samplers import SampleBatch, draw_eps
from svg_core.model import SVG

runner = CliRunner()


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def digits(test_digits) -> np.ndarray:
    return test_digits


@pytest.fixture(scope="module")
def test_set(digits, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "smmnist1.npz"
    save_npz(path, make_test_set(digits, SMMNISTConfig(num_digits=1, seq_len=7), 3, seed=5))
    return path


def _checkpoint(root: Path, kind: str) -> Path:
    torch.manual_seed(0)
    cfg = RunConfig(model=ModelConfig(kind=kind, width=4, g_dim=16, z_dim=4, rnn_size=16),
                    train=TrainConfig(n_past=2, n_future=3, num_digits=1, digits="bundled"))
    run = root / kind
    save_checkpoint(run, SVG(cfg.model), cfg, step=0)
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {kind: _checkpoint(root, kind) for kind in ("lp", "det")}


# --- bookkeeping ---------------------------------------------------------------------------------


def test_best_and_worst_are_chosen_per_metric_on_the_frame_average():
    # video 0: sample 0 is best on average for metric A although sample 1 wins the first step
    values = np.array([[[1.0, 5.0, 5.0], [4.0, 1.0, 1.0], [0.0, 0.0, 0.0]]])  # (V=1, N=3, H=3)
    sel = select_samples(values, higher_is_better=True)
    assert sel["best_index"].tolist() == [0] and sel["worst_index"].tolist() == [2]
    np.testing.assert_array_equal(sel["best"][0], [1.0, 5.0, 5.0])
    np.testing.assert_allclose(sel["mean"][0], values[0].mean(axis=0))
    low = select_samples(values, higher_is_better=False)  # e.g. LPIPS
    assert low["best_index"].tolist() == [2] and low["worst_index"].tolist() == [0]


def test_psnr_and_ssim_pick_different_samples_independently():
    gt = torch.zeros(1, 2, 1, 32, 32)
    gt[..., 13:19, 13:19] = 1.0
    noisy = gt + 0.1 * torch.randn(gt.shape, generator=torch.Generator().manual_seed(0))  # ~20 dB, SSIM ~0.1
    dim = gt * 0.2  # ~16.5 dB, but the black background stays exact: SSIM ~0.8
    samples = torch.stack([noisy, dim], dim=1)  # (V=1, N=2, H=2, C, H, W)
    p = psnr(samples, gt[:, None].expand_as(samples)).numpy()
    s = ssim(samples, gt[:, None].expand_as(samples), "uniform7").numpy()
    assert select_samples(p, True)["best_index"][0] == 0
    assert select_samples(s, True)["best_index"][0] == 1


def test_interval_is_196_std_over_sqrt_n():
    x = np.array([1.0, 2.0, 4.0, 7.0])
    mean, half = interval(x)
    assert mean == pytest.approx(3.5)
    assert half == pytest.approx(1.96 * np.std(x, ddof=1) / 2.0)
    assert interval(np.array([[3.0, 1.0]]))[1].tolist() == [0.0, 0.0]  # one video: no spread
    s = curve_summary(np.array([[1.0, 3.0], [3.0, 5.0]]))
    assert s["mean"] == pytest.approx(3.0) and s["per_step"] == pytest.approx([2.0, 4.0])
    assert s["ci95"] == pytest.approx(1.96 * np.std([2.0, 4.0], ddof=1) / np.sqrt(2))


def test_pairwise_mse_matches_brute_force():
    x = torch.rand(2, 4, 3, 1, 5, 5)
    brute = np.zeros((2, 3))
    for i in range(4):
        for j in range(i + 1, 4):
            brute += ((x[:, i] - x[:, j]) ** 2).mean(dim=(2, 3, 4)).numpy() / 6
    np.testing.assert_allclose(pairwise_mse(x), brute, rtol=1e-6)
    assert pairwise_mse(x[:, :1]).tolist() == [[0.0] * 3, [0.0] * 3]


class OracleSampler:
    """Returns the ground truth (samples 1..N-1 with noise): exercises caps, baselines and batching."""

    source, kind, z_dim, frame_shape, n_past, train_horizon = "test", "lp", 2, (1, 64, 64), 2, 5

    def __init__(self, frames: np.ndarray):
        self.frames = frames.astype(np.float32) / 255.0

    def sample(self, context, eps):
        idx = [int(np.nonzero((self.frames[:, :2] == c).all(axis=(1, 2, 3, 4)))[0][0]) for c in context]
        truth = self.frames[idx, 2:2 + eps.shape[2]]  # (V, H, C, H, W)
        noise = 0.1 * np.abs(eps[..., :1, None, None])  # (V, N, H, 1, 1, 1) from eps
        noise[:, 0] = 0.0
        frames = np.clip(truth[:, None] + noise, 0, 1).astype(np.float32)
        return SampleBatch(frames=frames, sigma=np.ones(eps.shape, np.float32))

    def describe(self):
        return {"kind": self.kind}


def test_evaluate_scores_baselines_caps_and_is_batch_independent(test_set):
    frames = load_npz(test_set)["frames"]
    out = evaluate(OracleSampler(frames), frames, EvalOptions(n_samples=3, batch_videos=2), progress=False)
    r = out.results
    assert (r["cond"], r["horizon"], r["n_videos"]) == (2, 5, 3)
    assert r["metrics"]["psnr"]["best"]["mean"] == pytest.approx(PSNR_CAP_DB)  # sample 0 is exact
    assert r["metrics"]["ssim"]["best"]["mean"] == pytest.approx(1.0, abs=1e-6)
    assert r["metrics"]["psnr"]["worst"]["mean"] < r["metrics"]["psnr"]["mean"]["mean"] < PSNR_CAP_DB
    assert r["protocol"]["psnr_capped_frames"] == 3 * 5
    assert r["diversity"]["mean"] > 0
    # the copy-last baseline is the last conditioning frame scored against every future frame
    gt = torch.from_numpy(frames).float() / 255
    last = gt[:, 1:2].expand(-1, 5, -1, -1, -1)
    expected = psnr(last, gt[:, 2:]).mean(dim=1).numpy().mean()
    assert r["baselines"]["copy_last"]["psnr"]["mean"] == pytest.approx(expected, rel=1e-6)
    assert r["baselines"]["black"]["ssim"]["mean"] > 0.5  # black background dominates SSIM
    again = evaluate(OracleSampler(frames), frames, EvalOptions(n_samples=3, batch_videos=1), progress=False)
    assert again.results["metrics"] == r["metrics"]


def test_options_are_validated():
    with pytest.raises(SVGError, match="ssim-window"):
        EvalOptions(ssim_window="box")
    with pytest.raises(SVGError, match="samples"):
        EvalOptions(n_samples=0)


def test_eps_depends_on_seed_and_video_only():
    a = draw_eps(7, np.array([0, 1, 2]), 4, 3, 2)
    b = draw_eps(7, np.array([2]), 4, 3, 2)
    np.testing.assert_array_equal(a[2], b[0])
    assert not np.array_equal(a, draw_eps(8, np.array([0, 1, 2]), 4, 3, 2))


# --- trajectories ----------------------------------------------------------------------------------


def test_tracking_recovers_true_positions_and_velocities(digits):
    cfg = SMMNISTConfig(num_digits=1, seq_len=30)
    data = tr.synchronised_set(digits, cfg, n_videos=3, seed=1)
    pos = tr.track(data["frames"], data["templates"][:, 0])
    expected = np.broadcast_to(data["positions"][:, 0], pos.shape)
    np.testing.assert_array_equal(pos, expected)
    hist = tr.velocity_histograms(pos, cfg.max_speed)
    assert hist.shape == (29, 82) and np.allclose(hist.sum(axis=1), 1.0)
    assert set(np.unique(hist)) <= {0.0, 1.0}  # synchronised: a delta at every step
    assert data["bounces"].any()  # 30 frames at up to 4 px/frame hit a wall


def test_bounce_hits_local_maxima_and_chance():
    series = np.array([0, 1, 0, 0, 0, 2, 1, 0, 0, 0], float)  # maxima at 1 and 5
    assert tr.local_maxima(series).nonzero()[0].tolist() == [1, 5]
    hits, n, chance = tr.bounce_hits(series, np.array([2, 8, 6, 0]))
    assert (hits, n) == (2, 3)  # 2 and 6 are within one frame of a max; 8 is not; 0 is not interior
    assert chance == pytest.approx(5 / 8)  # interior 1..8: 1, 2, 4, 5, 6 have a max within +-1
    assert tr.bounce_hits(series, np.array([2, 8, 6, 0]), first=3) == (1, 2, pytest.approx(3 / 6))
    bounces = np.zeros((6, 1), bool)
    bounces[2] = True
    assert tr.event_frames(bounces).tolist() == [3]
    walls = np.array([[5, 5], [0, 5], [0, 6], [9, 9], [31, 2]])
    assert tr.wall_events(walls, max_position=31).tolist() == [2, 5]


def test_total_variation():
    p = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    q = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    assert tr.total_variation(p, q).tolist() == [0.0, 1.0]


# --- CLI and reproducibility ----------------------------------------------------------------------


def test_data_smmnist_is_reproducible_by_seed(tmp_path):
    args = ["data", "smmnist", "--num-digits", "1", "--length", "6", "--count", "3", "--digits", "bundled"]
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        res = runner.invoke(app, [*args, "--seed", seed, "--out", str(tmp_path / f"{name}.npz")])
        assert res.exit_code == 0, res.output
    a, b, c = (load_npz(tmp_path / f"{n}.npz") for n in "abc")
    assert a["frames"].shape == (3, 6, 1, 64, 64) and a["frames"].dtype == np.uint8
    assert a["positions"].shape == (3, 6, 1, 2) and a["bounces"].shape == (3, 6, 1)
    for key in ("frames", "positions", "bounces", "digit_ids"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["frames"], c["frames"])


def test_eval_cli_end_to_end(runs, test_set, tmp_path):
    base = ["--data", str(test_set), "--samples", "3", "--horizon", "4", "--batch-videos", "2"]
    for kind in ("lp", "det"):
        res = runner.invoke(app, ["eval", str(runs[kind]), *base, "--out", str(tmp_path / kind)])
        assert res.exit_code == 0, res.output
        assert "copy-last SSIM" in res.output
    lp = json.loads((tmp_path / "lp" / "results.json").read_text())
    assert lp["options"]["n_samples"] == 3 and lp["options"]["ssim_window"] == "gaussian"
    assert len(lp["metrics"]["ssim"]["best"]["per_step"]) == 4 and lp["frames"] == [3, 4, 5, 6]
    assert lp["train_horizon"] == 5 and "100 dB" in lp["protocol"]["psnr"]
    det = json.loads((tmp_path / "det" / "results.json").read_text())
    assert det["options"]["n_samples_drawn"] == 1 and det["diversity"]["mean"] == 0.0
    assert det["metrics"]["psnr"]["best"] == det["metrics"]["psnr"]["worst"]
    for name in ("curves.png", "samples.png", "scores.npz", "samples.npz"):
        assert (tmp_path / "lp" / name).stat().st_size > 0
    res = runner.invoke(app, ["eval", str(runs["lp"]), *base, "--out", str(tmp_path / "lp2")])
    assert res.exit_code == 0
    again = json.loads((tmp_path / "lp2" / "results.json").read_text())
    assert again["metrics"] == lp["metrics"]  # same seed, same numbers
    res = runner.invoke(app, ["eval-plot", str(tmp_path / "lp"), str(tmp_path / "det" / "results.json"),
                              "--out", str(tmp_path / "cmp.png"), "--grid", str(tmp_path / "grid.png"),
                              "--label", "LP", "--label", "det"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cmp.png").stat().st_size > 0 and (tmp_path / "grid.png").stat().st_size > 0


def test_eval_cli_errors(runs, test_set, tmp_path):
    res = runner.invoke(app, ["eval", str(runs["lp"]), "--data", str(test_set), "--out", str(tmp_path / "x"),
                              "--lpips-weights", str(tmp_path / "alex.pth")])
    assert res.exit_code == 2 and "No such option" in res.output  # LPIPS is not offered (no weights to ship)
    res = runner.invoke(app, ["eval", str(runs["lp"]), "--data", str(test_set), "--out", str(tmp_path / "x"),
                              "--horizon", "50"])
    assert res.exit_code == 1 and "--horizon" in res.output
    res = runner.invoke(app, ["eval", str(tmp_path / "nothing"), "--data", str(test_set), "--out", str(tmp_path)])
    assert res.exit_code == 1 and "does not exist" in res.output


def test_eval_trajectories_cli(runs, tmp_path):
    res = runner.invoke(app, ["eval-trajectories", str(runs["lp"]), "--out", str(tmp_path), "--sigma-trajectories",
                              "1", "--sigma-videos", "2", "--sigma-length", "20", "--velocity-trajectories", "1",
                              "--velocity-digits", "2", "--velocity-samples", "2"])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "trajectories.json").read_text())
    assert report["sigma"]["true_frames"]["bounces"] > 0 and 0 <= report["sigma"]["true_frames"]["chance"] <= 1
    assert 0 <= report["velocity"]["tv_after"] <= 1
    assert (tmp_path / "sigma.png").stat().st_size > 0 and (tmp_path / "velocity.png").stat().st_size > 0


@pytest.mark.slow  # the ONNX export takes ~15 s of CPU
def test_checkpoint_and_bundle_give_the_same_numbers(runs, test_set, tmp_path):
    pytest.importorskip("onnxscript")
    from svg_export.bundle import ExportOptions, export_bundle

    export_bundle(ExportOptions(checkpoint=runs["lp"], out=tmp_path / "bundle"))
    base = ["--data", str(test_set), "--samples", "2", "--horizon", "3"]
    for name, src in (("ckpt", runs["lp"]), ("bundle", tmp_path / "bundle")):
        res = runner.invoke(app, ["eval", str(src), *base, "--out", str(tmp_path / name)])
        assert res.exit_code == 0, res.output
    ckpt, bundle = (json.loads((tmp_path / n / "results.json").read_text()) for n in ("ckpt", "bundle"))
    assert (ckpt["model"]["source"], bundle["model"]["source"]) == ("checkpoint", "bundle")
    assert bundle["train_horizon"] == ckpt["train_horizon"] == 5  # read from the manifest
    a, b = (load_npz(tmp_path / n / "scores.npz") for n in ("ckpt", "bundle"))
    np.testing.assert_allclose(a["psnr"], b["psnr"], atol=1e-3)
    np.testing.assert_allclose(a["ssim"], b["ssim"], atol=1e-5)
    assert bundle["baselines"] == ckpt["baselines"]
