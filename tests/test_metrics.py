import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from hmrlab import metrics as m


@pytest.fixture
def poses() -> np.ndarray:
    """(B, J, 3) = (4, 17, 3) random poses in metres."""
    return np.random.default_rng(0).normal(scale=0.3, size=(4, 17, 3))


def similarity_copy(x: np.ndarray, seed: int = 1) -> np.ndarray:
    """Each pose rotated, scaled and translated by its own random similarity."""
    rng = np.random.default_rng(seed)
    rotation = Rotation.random(x.shape[0], random_state=seed).as_matrix()
    scale = rng.uniform(0.5, 2.0, size=(x.shape[0], 1, 1))
    shift = rng.normal(size=(x.shape[0], 1, 3))
    return scale * x @ rotation.transpose(0, 2, 1) + shift


# --- closed forms ---------------------------------------------------------------------------


def test_mpjpe_of_known_offset(poses):
    offset = np.array([0.03, -0.04, 0.0])  # length 0.05
    assert m.mpjpe(poses + offset, poses) == pytest.approx(0.05, abs=1e-15)
    per_joint = np.zeros_like(poses)
    per_joint[:, 3] = [0.0, 0.0, 0.17]  # one of 17 joints off by 0.17
    assert m.mpjpe(poses + per_joint, poses) == pytest.approx(0.01, abs=1e-15)


def test_mpjpe_with_root_removes_translation(poses):
    moved = poses + np.random.default_rng(2).normal(size=(4, 1, 3))
    assert m.mpjpe(moved, poses) > 0.1
    assert m.mpjpe(moved, poses, root=0) == pytest.approx(0.0, abs=1e-14)
    assert m.mpjpe(moved, poses, root=[1, 4]) == pytest.approx(0.0, abs=1e-14)


def test_root_relative_mpjpe_closed_form():
    pred = np.zeros((1, 3, 3))
    target = np.zeros((1, 3, 3))
    pred[0, 1] = [3.0, 4.0, 0.0]
    # Root joint 0 coincides; joint 1 off by 5, joint 2 by 0: mean 5/3.
    assert m.mpjpe(pred, target, root=0) == pytest.approx(5 / 3)


def test_pa_mpjpe_of_similarity_copy_is_zero(poses):
    copy = similarity_copy(poses)
    assert m.pa_mpjpe(copy, poses) == pytest.approx(0.0, abs=1e-12)
    assert m.mpjpe(copy, poses) > 0.1
    assert m.pa_mpjpe(poses, copy) == pytest.approx(0.0, abs=1e-12)


def test_pa_mpjpe_at_most_rigid_alignment(poses):
    noisy = poses + np.random.default_rng(3).normal(scale=0.05, size=poses.shape)
    assert 0 < m.pa_mpjpe(noisy, poses) <= m.mpjpe(noisy, poses, root=0)


def test_n_mpjpe_of_scaled_copy_is_zero(poses):
    assert m.n_mpjpe(1.7 * poses, poses) == pytest.approx(0.0, abs=1e-14)
    assert m.mpjpe(1.7 * poses, poses) > 0.1


def test_n_mpjpe_closed_form_scale():
    # Target (1, 0, 0), prediction (1, 1, 0): s = <p, t>/<p, p> = 1/2, sp = (0.5, 0.5, 0),
    # error sqrt(0.5).
    pred = np.array([[[1.0, 1.0, 0.0]]])
    target = np.array([[[1.0, 0.0, 0.0]]])
    assert m.n_mpjpe(pred, target) == pytest.approx(np.sqrt(0.5))
    assert m.n_mpjpe(np.zeros_like(target), target) == pytest.approx(1.0)


def test_mpvpe_and_pa_mpvpe_on_vertices():
    verts = np.random.default_rng(4).normal(size=(2, 500, 3))
    assert m.mpvpe(verts + [0.0, 0.0, 0.002], verts) == pytest.approx(0.002, abs=1e-15)
    assert m.pa_mpvpe(similarity_copy(verts), verts) == pytest.approx(0.0, abs=1e-12)
    assert m.mpvpe(verts, verts, reduction="joint").shape == (500,)


def test_accel_error_of_constant_velocity_offset_is_zero():
    target = np.random.default_rng(5).normal(size=(2, 10, 5, 3))
    t = np.arange(10)[None, :, None, None]
    drift = t * np.array([0.01, -0.02, 0.005]) + 0.3
    assert m.accel_error(target + drift, target) == pytest.approx(0.0, abs=1e-14)
    assert m.mpjve(target + drift, target) == pytest.approx(np.linalg.norm([0.01, -0.02, 0.005]))


def test_accel_error_of_quadratic_is_closed_form():
    # x(t) = c t^2 has second difference 2c at every frame, so the error is |2c|.
    c = np.array([0.3, 0.0, -0.4])  # |c| = 0.5
    t = np.arange(6, dtype=float)[:, None, None]
    target = np.zeros((6, 2, 3))
    pred = target + c * t**2
    assert m.accel_error(pred, target) == pytest.approx(1.0)
    frames = m.accel_error(pred, target, reduction="frame")
    np.testing.assert_allclose(frames, np.ones(4))
    # Velocity error of c t^2 at frame t is |c| (2t + 1): mean over t = 0..4 is 5|c|.
    assert m.mpjve(pred, target) == pytest.approx(0.5 * np.mean(2 * np.arange(5) + 1))


def test_temporal_metrics_need_enough_frames():
    with pytest.raises(ValueError, match="at least 3 frames"):
        m.accel_error(np.zeros((2, 17, 3)), np.zeros((2, 17, 3)))
    with pytest.raises(ValueError, match="at least 2 frames"):
        m.mpjve(np.zeros((1, 17, 3)), np.zeros((1, 17, 3)))
    with pytest.raises(ValueError, match=r"pred must have shape \(\.\.\., T, J, 3\)"):
        m.accel_error(np.zeros((17, 3)), np.zeros((17, 3)))


def test_pck_hand_built():
    target = np.zeros((2, 4, 3))
    pred = target.copy()
    pred[0, :, 0] = [0.0, 0.1, 0.149, 0.2]  # 3 of 4 within 0.15 m
    pred[1, :, 1] = [0.15, 0.16, 0.0, 1.0]  # 1 of 4: exactly 0.15 is not "< 0.15"
    assert m.pck(pred, target) == pytest.approx(4 / 8)
    np.testing.assert_allclose(m.pck(pred, target, reduction="frame"), [0.75, 0.25])
    np.testing.assert_allclose(m.pck(pred, target, reduction="joint"), [0.5, 0.5, 1.0, 0.0])
    np.testing.assert_allclose(m.pck(pred, target, threshold=0.5), 7 / 8)
    assert m.pck(pred * 1000, target, threshold=150) == pytest.approx(4 / 8)


def test_auc_closed_forms():
    target = np.zeros((1, 2, 3))
    # A perfect prediction passes every threshold except 0 (strict "<", as in the 3DHP code).
    assert m.auc(target, target) == pytest.approx(30 / 31)
    assert m.auc(target, target, thresholds=[0.05, 0.1]) == pytest.approx(1.0)
    # Errors 0.0125 and 0.2: the first passes thresholds 0.015 .. 0.15 (28 of 31), the second none.
    pred = target.copy()
    pred[0, :, 2] = [0.0125, 0.2]
    assert m.auc(pred, target) == pytest.approx((28 / 31 + 0.0) / 2)
    np.testing.assert_allclose(m.auc(pred, target, reduction="none"), [[28 / 31, 0.0]])
    assert len(m.MPI_INF_3DHP_AUC_THRESHOLDS) == 31
    assert m.MPI_INF_3DHP_AUC_THRESHOLDS[-1] == pytest.approx(0.15)


def test_auc_bad_thresholds():
    x = np.zeros((1, 2, 3))
    for bad in ([], [-0.1], [[0.1]]):
        with pytest.raises(ValueError, match="thresholds"):
            m.auc(x, x, thresholds=bad)


# --- reductions, types, numpy vs torch ------------------------------------------------------

METRICS = [m.mpjpe, m.pa_mpjpe, m.n_mpjpe, m.mpvpe, m.pa_mpvpe, m.pck, m.auc]
TEMPORAL = [m.accel_error, m.mpjve]


@pytest.mark.parametrize("metric", METRICS + TEMPORAL)
def test_reduction_shapes(metric):
    rng = np.random.default_rng(6)
    pred, target = rng.normal(scale=0.1, size=(2, 2, 5, 7, 3))
    shrink = {m.accel_error: 2, m.mpjve: 1}.get(metric, 0)
    assert np.ndim(metric(pred, target)) == 0
    assert metric(pred, target, reduction="frame").shape == (2, 5 - shrink)
    assert metric(pred, target, reduction="joint").shape == (7,)
    assert metric(pred, target, reduction="none").shape == (2, 5 - shrink, 7)
    # The reductions are nested means of the same numbers.
    none = metric(pred, target, reduction="none")
    assert metric(pred, target) == pytest.approx(none.mean())
    np.testing.assert_allclose(metric(pred, target, reduction="frame"), none.mean(-1))
    np.testing.assert_allclose(metric(pred, target, reduction="joint"), none.mean((0, 1)))
    with pytest.raises(ValueError, match="reduction must be one of"):
        metric(pred, target, reduction="sum")


@pytest.mark.parametrize("metric", METRICS + TEMPORAL)
def test_numpy_and_torch_agree(metric):
    rng = np.random.default_rng(7)
    pred, target = rng.normal(scale=0.1, size=(2, 3, 6, 3))
    numpy_out = metric(pred, target, reduction="none")
    assert isinstance(numpy_out, np.ndarray) and numpy_out.dtype == np.float64
    scalar = metric(pred, target)
    assert isinstance(scalar, np.floating)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        p, t = torch.tensor(pred, dtype=dtype), torch.tensor(target, dtype=dtype)
        torch_out = metric(p, t, reduction="none")
        assert isinstance(torch_out, torch.Tensor) and torch_out.dtype == dtype
        np.testing.assert_allclose(torch_out.numpy(), numpy_out, atol=tol)


def test_float32_numpy_is_computed_in_float64():
    rng = np.random.default_rng(8)
    pred, target = rng.normal(size=(2, 3, 17, 3)).astype(np.float32)
    out = m.pa_mpjpe(pred, target, reduction="frame")
    assert out.dtype == np.float64
    ref = m.pa_mpjpe(pred.astype(np.float64), target.astype(np.float64), reduction="frame")
    np.testing.assert_array_equal(out, ref)


def test_integer_inputs_are_accepted():
    pred = np.zeros((1, 2, 3), dtype=int)
    target = np.array([[[3, 4, 0], [0, 0, 0]]])
    assert m.mpjpe(pred, target) == pytest.approx(2.5)
    assert m.mpjpe(torch.from_numpy(pred), torch.from_numpy(target)).item() == pytest.approx(2.5)


@pytest.mark.parametrize(
    "metric,root",
    [
        (m.mpjpe, None),
        (m.mpjpe, 0),
        (m.pa_mpjpe, None),
        (m.n_mpjpe, None),
        (m.mpvpe, None),
        (m.pa_mpvpe, None),
    ],
)
def test_gradients_flow(metric, root):
    gen = torch.Generator().manual_seed(9)
    target = torch.randn(2, 6, 3, dtype=torch.float64, generator=gen)
    noise = 0.1 * torch.randn(2, 6, 3, dtype=torch.float64, generator=gen)
    pred = (target + noise).requires_grad_(True)
    kwargs = {} if root is None else {"root": root}
    loss = metric(pred, target, **kwargs)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0

    def per_frame(p):
        return metric(p, target, reduction="frame", **kwargs)

    assert torch.autograd.gradcheck(per_frame, (pred,))


@pytest.mark.parametrize("metric", TEMPORAL)
def test_temporal_gradients_flow(metric):
    gen = torch.Generator().manual_seed(10)
    target = torch.randn(2, 5, 4, 3, dtype=torch.float64, generator=gen)
    noise = 0.1 * torch.randn(2, 5, 4, 3, dtype=torch.float64, generator=gen)
    pred = (target + noise).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: metric(p, target, reduction="frame"), (pred,))


def test_gradient_is_finite_where_pred_equals_target():
    target = torch.randn(2, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(11))
    pred = target.clone().requires_grad_(True)
    m.mpjpe(pred, target, root=0).backward()
    assert torch.isfinite(pred.grad).all()


# --- bad input ------------------------------------------------------------------------------


def bad_pairs():
    good = np.zeros((2, 17, 3))
    nan = good.copy()
    nan[0, 0, 0] = np.nan
    inf = good.copy()
    inf[1, 3, 2] = np.inf
    return [
        (good, np.zeros((2, 14, 3)), "same shape"),
        (nan, good, "NaN or inf"),
        (good, inf, "NaN or inf"),
        (np.zeros((0, 17, 3)), np.zeros((0, 17, 3)), "empty"),
        (
            np.zeros((2, 17, 2)),
            np.zeros((2, 17, 2)),
            r"must have shape \(\.\.\., [JV], 3\); got \(2, 17, 2\)",
        ),
        (np.zeros(3), np.zeros(3), "must have shape"),
    ]


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("pred,target,message", bad_pairs())
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_bad_input_raises_value_error(metric, pred, target, message, kind):
    if kind == "torch":
        pred, target = torch.from_numpy(pred), torch.from_numpy(target)
    with pytest.raises(ValueError, match=message):
        metric(pred, target)


def test_mixed_array_kinds_raise_type_error():
    with pytest.raises(TypeError, match="must both be NumPy arrays or both torch tensors"):
        m.mpjpe(np.zeros((2, 17, 3)), torch.zeros(2, 17, 3))


def test_mixed_torch_dtypes_are_promoted():
    target = torch.randn(2, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(12))
    out = m.pa_mpjpe(target.float(), target, reduction="frame")
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, torch.zeros(2, dtype=torch.float64), atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("metric", [m.mpjpe, m.pa_mpjpe, m.n_mpjpe])
def test_half_precision_is_computed_in_float32(metric, dtype):
    rng = np.random.default_rng(3)
    pred, target = (torch.from_numpy(a) * 1000 for a in rng.normal(size=(2, 4, 17, 3)))  # millimetres
    low = metric(pred.to(dtype), target.to(dtype))  # float16 would overflow squares of 256 mm and more
    assert low.dtype == torch.float32 and torch.isfinite(low)
    torch.testing.assert_close(low, metric(pred.to(dtype).float(), target.to(dtype).float()))


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["complex64", "bool"])
def test_complex_and_boolean_inputs_are_refused(kind, dtype):
    pred = np.zeros((2, 17, 3), dtype=dtype)
    if kind == "torch":
        pred = torch.from_numpy(pred)
    with pytest.raises(ValueError, match=f"pred must hold real numbers .*got dtype .*{dtype}"):
        m.mpjpe(pred, pred)
