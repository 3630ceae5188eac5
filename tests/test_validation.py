import numpy as np
import pytest
import torch

from hmrlab.validation import (
    check_array,
    check_finite,
    check_nonempty,
    check_points,
    check_same_shape,
    check_shape,
    format_shape,
)


@pytest.mark.parametrize("make", [np.zeros, torch.zeros])
def test_valid_points_pass(make):
    check_points(make((4, 17, 3)), "pred", dims=("J",))
    check_points(make((2, 5, 17, 3)), "pred", dims=("T", "J"))
    check_points(make((17, 2)), "kp", dims=("J",), last_dim=2)


def test_format_shape():
    assert format_shape((4, 17, 3)) == "(4, 17, 3)"
    assert format_shape(("...", "J", 3)) == "(..., J, 3)"


@pytest.mark.parametrize("make", [np.zeros, torch.zeros])
def test_wrong_trailing_dim_names_argument_and_shapes(make):
    message = r"pred must have shape \(\.\.\., J, 3\); got \(4, 17, 2\)"
    with pytest.raises(ValueError, match=message):
        check_points(make((4, 17, 2)), "pred", dims=("J",))


def test_too_few_dims():
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., T, J, 3\); got \(17, 3\)"):
        check_points(np.zeros((17, 3)), "x", dims=("T", "J"))


def test_check_shape_exact_sizes():
    check_shape(torch.zeros(2, 3, 3), "R", (3, 3))
    with pytest.raises(ValueError, match=r"R must have shape \(\.\.\., 3, 3\); got \(2, 3, 4\)"):
        check_shape(torch.zeros(2, 3, 4), "R", (3, 3))


@pytest.mark.parametrize("make", [np.zeros, torch.zeros])
def test_empty_rejected(make):
    with pytest.raises(ValueError, match=r"pred is empty \(shape \(0, 17, 3\)\)"):
        check_points(make((0, 17, 3)), "pred", dims=("J",))
    with pytest.raises(ValueError, match="empty"):
        check_nonempty(make((4, 0, 3)), "pred")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_non_finite_rejected(bad, kind):
    x = np.zeros((3, 4, 3))
    x[1, 2, 0] = bad
    x = torch.from_numpy(x) if kind == "torch" else x
    with pytest.raises(ValueError, match=r"target contains 1 NaN or inf"):
        check_points(x, "target", dims=("J",))
    with pytest.raises(ValueError):
        check_finite(x, "target")


def test_non_finite_tensor_requiring_grad():
    x = torch.full((2, 3), float("nan"), requires_grad=True)
    with pytest.raises(ValueError, match="6 NaN"):
        check_finite(x, "x")


def test_not_an_array():
    with pytest.raises(TypeError, match="pred must be a numpy.ndarray or a torch.Tensor; got list"):
        check_array([[0.0, 0.0, 0.0]], "pred")
    with pytest.raises(TypeError):
        check_points([[0.0, 0.0, 0.0]], "pred")


def test_same_shape():
    check_same_shape(np.zeros((2, 3)), torch.zeros(2, 3), ("a", "b"))
    with pytest.raises(
        ValueError,
        match=r"pred and target must have the same shape; got \(2, 17, 3\) and \(2, 14, 3\)",
    ):
        check_same_shape(np.zeros((2, 17, 3)), np.zeros((2, 14, 3)), ("pred", "target"))
