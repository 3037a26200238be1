"""Stochastic Moving MNIST generator: motion invariants, randomness only at bounces, frames, seeds."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from svg_core.data import (
    SMMNISTConfig,
    config_of,
    generate_batch,
    generate_sequence,
    load_npz,
    make_test_set,
    resize_digits,
    save_npz,
    simulate_trajectories,
    velocity_distribution,
)
from svg_core.data.smmnist import _draw_velocity, _velocity_tables
from svg_core.errors import SVGError

N_SEQS = 200


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """Stand-in digits (28 x 28 uint8): random strokes on a black border, distinct per index."""
    rng = np.random.default_rng(0)
    out = np.zeros((30, 28, 28), dtype=np.uint8)
    out[:, 4:24, 4:24] = rng.integers(1, 256, size=(30, 20, 20))
    return out


class CountingRng:
    """Wraps a Generator and counts calls to `random()`, the only draw used after the start."""

    def __init__(self, seed: int) -> None:
        self.gen, self.calls = np.random.default_rng(seed), 0

    def random(self, *args, **kwargs):
        self.calls += 1
        return self.gen.random(*args, **kwargs)


def run_many(cfg: SMMNISTConfig, digits: np.ndarray, n: int = N_SEQS) -> dict[str, np.ndarray]:
    return generate_batch(7, 0, n, digits, cfg)


def wall_hit(prev_pos: np.ndarray, prev_vel: np.ndarray, lim: int) -> tuple[np.ndarray, np.ndarray]:
    """Which walls the unclamped next position crosses: -1 low, +1 high, 0 none; per axis."""
    nxt = prev_pos + prev_vel
    return np.where(nxt[..., 0] < 0, -1, np.where(nxt[..., 0] > lim, 1, 0)), \
        np.where(nxt[..., 1] < 0, -1, np.where(nxt[..., 1] > lim, 1, 0))


@pytest.mark.parametrize("velocity", ["uniform", "nonuniform"])
@pytest.mark.parametrize("deterministic", [False, True])
def test_motion_invariants(digits, velocity, deterministic):
    cfg = SMMNISTConfig(seq_len=30, velocity=velocity, deterministic=deterministic)
    data = run_many(cfg, digits)
    pos, vel, bounce = data["positions"].astype(np.int64), data["velocities"], data["bounces"]
    lim = cfg.max_position
    assert pos.min() >= 0 and pos.max() <= lim and np.abs(vel).max() <= cfg.max_speed
    assert not bounce[:, 0].any()  # starts inside the frame
    assert bounce.sum() > N_SEQS  # enough bounces to test something
    # Between wall hits: velocity constant and position advances by it exactly.
    same = ~bounce[:, 1:]
    assert (vel[:, 1:][same] == vel[:, :-1][same]).all()
    assert (pos[:, 1:][same] == (pos[:, :-1] + vel[:, :-1])[same]).all()
    # At a hit: clamped to the wall that was crossed, velocity points away from it.
    wx, wy = wall_hit(pos[:, :-1], vel[:, :-1], lim)
    assert (((wx != 0) | (wy != 0)) == bounce[:, 1:]).all()
    new_v, new_p = vel[:, 1:], pos[:, 1:]
    for w, axis in ((wx, 0), (wy, 1)):
        low, high = w == -1, w == 1
        assert (new_p[..., axis][low] == 0).all() and (new_p[..., axis][high] == lim).all()
        assert (new_v[..., axis][low] > 0).all() and (new_v[..., axis][high] < 0).all()
    if deterministic:  # exact reflection: the crossed component negated, the other kept
        for w, axis in ((wx, 0), (wy, 1)):
            old = vel[:, :-1][..., axis]
            expected = np.where(w != 0, -old, old)
            assert (new_v[..., axis][bounce[:, 1:]] == expected[bounce[:, 1:]]).all()
    else:  # stochastic: the free component takes every value at bounces (not a reflection)
        free = new_v[..., 0][(wy != 0) & (wx == 0)]
        assert set(free.tolist()) == set(range(-4, 5))


def test_deterministic_matches_the_authors_loop(digits):
    """Deterministic mode = the authors' moving_mnist.py with deterministic=True (y then x checks)."""
    cfg = SMMNISTConfig(seq_len=40, deterministic=True, num_digits=1)
    lim, size = cfg.max_position, cfg.image_size
    for seed in range(30):
        rng = np.random.default_rng(seed)
        sx, sy = rng.integers(0, size - 32, size=2)
        dx, dy = rng.integers(-4, 5, size=2)
        ours, _, _ = simulate_trajectories(None, cfg, np.array([[sx, sy]]), np.array([[dx, dy]]))
        ref = []
        for _ in range(cfg.seq_len):
            if sy < 0:
                sy, dy = 0, -dy
            elif sy >= size - 32:
                sy, dy = size - 32 - 1, -dy
            if sx < 0:
                sx, dx = 0, -dx
            elif sx >= size - 32:
                sx, dx = size - 32 - 1, -dx
            ref.append((sx, sy))
            sx, sy = sx + dx, sy + dy
        np.testing.assert_array_equal(ours[:, 0], np.array(ref))
        assert lim == size - 32 - 1


@pytest.mark.parametrize("velocity", ["uniform", "nonuniform"])
def test_randomness_only_at_bounces(velocity):
    cfg = SMMNISTConfig(seq_len=60, velocity=velocity)
    start_pos, start_vel = np.array([[3, 20], [25, 9]]), np.array([[-4, 3], [2, -1]])
    n_differ = 0
    for seed in range(40):
        counting = CountingRng(seed)
        pos, vel, bounce = simulate_trajectories(counting, cfg, start_pos, start_vel)
        assert counting.calls == bounce.sum()  # one draw per digit per bounce, none elsewhere
        # Another stream: identical until each digit's first bounce, which lands on the same spot.
        pos2, vel2, bounce2 = simulate_trajectories(np.random.default_rng(seed + 1000), cfg, start_pos, start_vel)
        for d in range(2):
            first = int(np.argmax(bounce[:, d]))
            assert bounce[first, d] and bounce2[first, d] and not bounce[:first, d].any()
            np.testing.assert_array_equal(pos[: first + 1, d], pos2[: first + 1, d])
            np.testing.assert_array_equal(vel[:first, d], vel2[:first, d])
            n_differ += not np.array_equal(vel[first:, d], vel2[first:, d])
    assert n_differ >= 70  # the new velocity really is random
    counting = CountingRng(0)
    simulate_trajectories(counting, SMMNISTConfig(seq_len=60, deterministic=True), start_pos, start_vel)
    assert counting.calls == 0


def test_velocity_distributions_renormalise():
    uni = SMMNISTConfig()
    grid, p = velocity_distribution(uni)
    np.testing.assert_allclose(p, 1 / 81)
    grid, p = velocity_distribution(uni, wall_y=-1)  # top wall: dy in 1..4, dx free (authors)
    valid = grid[:, 1] >= 1
    np.testing.assert_allclose(p[valid], 1 / 36)
    assert (p[~valid] == 0).all()
    non = SMMNISTConfig(velocity="nonuniform")
    grid, p0 = velocity_distribution(non)
    speed = np.abs(grid).sum(axis=1)
    np.testing.assert_allclose(p0, speed / speed.sum())  # p proportional to |dx| + |dy|
    assert p0[(grid == 0).all(axis=1)] == 0
    for wall_x, wall_y in [(1, 0), (-1, 0), (0, 1), (-1, 1), (1, -1)]:
        grid, p = velocity_distribution(non, wall_x, wall_y)
        valid = np.ones(len(grid), dtype=bool)
        if wall_x:
            valid &= grid[:, 0] * wall_x < 0
        if wall_y:
            valid &= grid[:, 1] * wall_y < 0
        assert (p[~valid] == 0).all() and abs(p.sum() - 1) < 1e-12
        np.testing.assert_allclose(p[valid], p0[valid] / p0[valid].sum())  # renormalised start dist.


def test_sampler_follows_the_distribution():
    cfg = SMMNISTConfig(velocity="nonuniform")
    grid, cdfs = _velocity_tables(cfg.max_speed, cfg.velocity)
    _, p = velocity_distribution(cfg, wall_x=1)
    rng = np.random.default_rng(0)
    draws = np.array([_draw_velocity(rng, grid, cdfs[(1, 0)]) for _ in range(20000)])
    k = (draws[:, 0] + 4) * 9 + (draws[:, 1] + 4)
    freq = np.bincount(k, minlength=81) / len(draws)
    assert (freq[p == 0] == 0).all()
    np.testing.assert_allclose(freq, p, atol=0.006)


def test_frames_show_the_digits_at_their_positions(digits):
    bank = resize_digits(digits, 32)
    cfg1 = SMMNISTConfig(num_digits=1, seq_len=12)
    seq = generate_sequence(np.random.default_rng(3), digits, cfg1)
    frames, pos, ids = seq["frames"], seq["positions"].astype(int), seq["digit_ids"]
    assert frames.shape == (12, 1, 64, 64) and frames.dtype == np.uint8
    for t in range(12):
        x, y = pos[t, 0]
        expected = np.zeros((64, 64), dtype=np.uint8)
        expected[y: y + 32, x: x + 32] = bank[ids[0]]
        np.testing.assert_array_equal(frames[t, 0], expected)
    cfg2 = SMMNISTConfig(num_digits=2, seq_len=12, channels=3)
    seq = generate_sequence(np.random.default_rng(4), digits, cfg2)
    pos, ids = seq["positions"].astype(int), seq["digit_ids"]
    assert ids[0] != ids[1]
    for t in range(12):
        acc = np.zeros((64, 64), dtype=np.int32)
        for d in range(2):
            x, y = pos[t, d]
            acc[y: y + 32, x: x + 32] += bank[ids[d]]
        for c in range(3):
            np.testing.assert_array_equal(seq["frames"][t, c], np.minimum(acc, 255))


def test_resize_is_bilinear_and_cached(digits):
    bank = resize_digits(digits, 32)
    assert bank.shape == (30, 32, 32) and bank.dtype == np.uint8
    assert resize_digits(digits, 32) is bank and resize_digits(bank, 32) is bank
    assert bank[:, 0, 0].max() == 0 and abs(bank.mean() / digits.mean() - 1) < 0.05
    with pytest.raises(SVGError, match="uint8"):
        resize_digits(digits.astype(np.float32), 32)
    big = generate_sequence(np.random.default_rng(0), digits, SMMNISTConfig(image_size=128, seq_len=3))
    assert big["frames"].shape == (3, 1, 128, 128) and big["positions"].max() <= 128 - 64 - 1


def test_reproducible_in_any_order(digits):
    cfg = SMMNISTConfig(seq_len=10)
    full = generate_batch(5, 0, 8, digits, cfg)
    part = generate_batch(5, 3, 2, digits, cfg)
    for key in ("frames", "positions", "velocities", "bounces", "digit_ids"):
        np.testing.assert_array_equal(part[key], full[key][3:5])
    for i in reversed(range(8)):
        one = generate_batch(5, i, 1, digits, cfg)
        np.testing.assert_array_equal(one["frames"][0], full["frames"][i])
    other = generate_batch(6, 0, 8, digits, cfg)
    assert not np.array_equal(other["frames"], full["frames"])
    with pytest.raises(SVGError, match="seed and sequence index must be >= 0"):
        generate_batch(-1, 0, 2, digits, cfg)


def test_torch_dataset_matches_numpy_and_dataloader_workers(digits):
    torch = pytest.importorskip("torch")
    from svg_core.data import SMMNISTDataset

    cfg = SMMNISTConfig(seq_len=6)
    ds = SMMNISTDataset(digits, cfg, seed=2)
    ref = generate_batch(2, 8, 8, digits, cfg)
    batch = ds.batch(2, 4)
    assert batch.shape == (4, 6, 1, 64, 64) and batch.dtype == torch.float32
    np.testing.assert_array_equal((batch.numpy() * 255).round().astype(np.uint8), ref["frames"][:4])
    item = ds[13]
    np.testing.assert_array_equal(item["positions"].numpy(), ref["positions"][5])
    np.testing.assert_array_equal(item["bounces"].numpy(), ref["bounces"][5])
    assert 0.0 <= float(item["frames"].min()) and float(item["frames"].max()) <= 1.0
    loader = torch.utils.data.DataLoader(ds, batch_size=4, sampler=range(8, 16), num_workers=2)
    got = torch.cat([b["frames"] for b in loader])
    torch.testing.assert_close(got, torch.cat([ds.batch(2, 4), ds.batch(3, 4)]), rtol=0, atol=0)
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_batch_is_fast(digits):
    cfg = SMMNISTConfig(seq_len=15)
    generate_batch(0, 0, 32, digits, cfg)  # warm the resize cache
    best = min(_timed(lambda i=i: generate_batch(0, 32 * i, 32, digits, cfg)) for i in range(5))
    assert best < 0.1, f"32 x 15-frame sequences took {best * 1e3:.1f} ms"


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_config_validation():
    assert SMMNISTConfig().digit_size == 32 and SMMNISTConfig(image_size=128).digit_size == 64
    assert SMMNISTConfig(image_size=128, digit_size=32).max_position == 95
    bad = [
        ({"digit_size": 64}, "digit_size \\(64\\) must be smaller than image_size"),
        ({"velocity": "gaussian"}, "unknown SM-MNIST velocity distribution 'gaussian'"),
        ({"channels": 2}, "channels must be 1 or 3"),
        ({"num_digits": 0}, "num_digits must be an integer >= 1"),
        ({"seq_len": 2.5}, "seq_len must be an integer"),
        ({"max_speed": 0}, "max_speed must be"),
        ({"image_size": 4, "digit_size": 2}, "image_size must be >= 8"),
        ({"deterministic": "yes"}, "deterministic must be true or false"),
    ]
    for kwargs, message in bad:
        with pytest.raises(SVGError, match=message):
            SMMNISTConfig(**kwargs)
    with pytest.raises(SVGError, match="unknown SM-MNIST options \\['speed'\\]"):
        SMMNISTConfig.from_dict({"speed": 3})


def test_test_set_npz_roundtrip(digits, tmp_path):
    cfg = SMMNISTConfig(seq_len=5, num_digits=1, velocity="nonuniform")
    data = make_test_set(digits, cfg, count=4, seed=11)
    path = save_npz(tmp_path / "sub" / "test.npz", data)
    assert [p.name for p in path.parent.iterdir()] == ["test.npz"]  # no temp file left
    loaded = load_npz(path)
    assert set(loaded) == set(data)
    for key in data:
        np.testing.assert_array_equal(loaded[key], data[key])
    assert config_of(loaded) == cfg and int(loaded["seed"]) == 11
    np.testing.assert_array_equal(loaded["frames"], generate_batch(11, 0, 4, digits, cfg)["frames"])
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(SVGError, match="not a readable .npz"):
        load_npz(tmp_path / "bad.npz")
    with pytest.raises(SVGError, match="no such file"):
        load_npz(tmp_path / "missing.npz")
    with pytest.raises(SVGError, match="dtype object"):
        save_npz(tmp_path / "o.npz", {"x": np.array([{}], dtype=object)})


def test_numpy_part_does_not_import_torch():
    code = "import sys, svg_core.data; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
