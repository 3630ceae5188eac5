import re

import numpy as np
import pytest
import torch

from hmrlab.validation import (
    as_pair,
    check_array,
    check_exact_shape,
    check_faces,
    check_finite,
    check_flip_permutation,
    check_floating,
    check_nonempty,
    check_points,
    check_real,
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


@pytest.mark.parametrize("make", [np.zeros, torch.zeros])
def test_check_exact_shape_accepts_any_size_for_named_dims(make):
    check_exact_shape(make((2, 8, 5, 7)), "features", ("B", 8, "H", "W"))
    check_exact_shape(make((0, 8, 1, 1)), "features", ("B", 8, "H", "W"))  # a size, not a value check


@pytest.mark.parametrize(
    "shape",
    [(2, 4, 5, 5), (8, 5, 5), (1, 2, 8, 5, 5)],  # wrong channels; one dimension short; one too many
)
def test_check_exact_shape_names_argument_pattern_and_shape(shape):
    expected = re.escape(f"LCR input must have shape (B, 8, H, W); got {format_shape(shape)}")
    with pytest.raises(ValueError, match=expected):
        check_exact_shape(torch.zeros(shape), "LCR input", ("B", 8, "H", "W"))


def test_check_exact_shape_rejects_a_non_array_with_value_error():
    with pytest.raises(ValueError, match=r"tokens must be a tensor of shape \(B, N, 64\); got list"):
        check_exact_shape([[0.0] * 64], "tokens", ("B", "N", 64))


@pytest.mark.parametrize(
    ("size", "pair"), [(7, (7, 7)), ((3, 5), (3, 5)), ([4, 2], (4, 2)), ((1, 1), (1, 1))]
)
def test_as_pair(size, pair):
    result = as_pair(size, "output_size")
    assert result == pair and type(result) is tuple


@pytest.mark.parametrize("size", [0, -2, (3,), (3, 4, 5), (3, 0), (2.0, 2), (True, 2)])
def test_as_pair_rejects_anything_but_positive_ints(size):
    expected = re.escape(f"body_shape must be a positive int or a pair (height, width) of them; got {size!r}")
    with pytest.raises(ValueError, match=expected):
        as_pair(size, "body_shape")


@pytest.mark.parametrize("size", [True, 2.0])
def test_as_pair_refuses_a_bool_or_float_size(size):
    with pytest.raises(ValueError, match="output_size must be a positive int or a pair"):  # not (1, 1) or (2, 2)
        as_pair(size, "output_size")


@pytest.mark.parametrize("make", [np.array, torch.tensor])
@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_check_faces_returns_int64_triangles(make, dtype):
    faces = np.array([[0, 1, 2], [2, 1, 3]], dtype=dtype)
    checked = check_faces(make(faces), 4)
    assert isinstance(checked, np.ndarray) and checked.dtype == np.int64
    np.testing.assert_array_equal(checked, faces.astype(np.int64))
    assert check_faces(faces.astype(np.uint16), 4).dtype == np.int64  # unsigned too (mesh files store uint16)
    assert check_faces(np.zeros((0, 3), dtype=int), 0).shape == (0, 3)  # no triangles at all is valid


@pytest.mark.parametrize(
    ("faces", "n_vertices", "expected"),
    [
        (np.zeros((4, 2), dtype=int), 4, "faces must have shape (F, 3) (triangles); got (4, 2)"),
        (np.zeros(3, dtype=int), 4, "faces must have shape (F, 3) (triangles); got (3)"),
        (np.zeros((2, 3)), 4, "faces must hold integer vertex indices; got dtype float64"),
        (np.array([[0, 1, 4]]), 4,
         "faces index vertices in [0, 4] but there are 4 vertices: indices must lie in [0, 3]"),
        (np.array([[-1, 1, 2]]), 4, "faces index vertices in [-1, 2]"),
    ],
)
def test_check_faces_says_what_is_wrong(faces, n_vertices, expected):
    with pytest.raises(ValueError, match=re.escape(expected)):
        check_faces(faces, n_vertices)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.bool, np.complex128, np.bool_, np.str_])
def test_check_real_refuses_what_is_not_real_numbers(dtype):
    x = torch.zeros(2, 3, dtype=dtype) if isinstance(dtype, torch.dtype) else np.zeros((2, 3), dtype=dtype)
    with pytest.raises(ValueError, match="pred must hold real numbers"):
        check_real(x, "pred")
    check_real(torch.zeros(2, dtype=torch.int64), "pred")
    check_real(np.zeros(2, dtype=np.float16), "pred")


def test_check_floating_names_the_dtype_and_the_conversion():
    check_floating(torch.zeros(2, dtype=torch.bfloat16), "x")
    with pytest.raises(ValueError, match=r"x must have a floating-point dtype; got int64\. Convert it with x\.float"):
        check_floating(torch.zeros(2, dtype=torch.int64), "x")
    with pytest.raises(ValueError, match=r"x must have dtype float32 or float64; got float16"):
        check_floating(torch.zeros(2, dtype=torch.float16), "x", (torch.float32, torch.float64))
    with pytest.raises(ValueError, match=r"complex64\. Take \.real or \.abs\(\)"):
        check_floating(torch.zeros(2, dtype=torch.complex64), "x")
    with pytest.raises(TypeError, match="torch.Tensor"):
        check_floating(np.zeros(2), "x")


def test_check_flip_permutation():
    assert check_flip_permutation(np.array([0, 2, 1]), 3) == [0, 2, 1]
    with pytest.raises(ValueError, match=r"must be 3 integer joint indices \(shape \(3,\)"):
        check_flip_permutation([0, 1], 3)
    with pytest.raises(ValueError, match=r"integer joint indices"):
        check_flip_permutation(np.array([0.0, 2.0, 1.0]), 3)
    with pytest.raises(ValueError, match=r"permutation of range\(3\)"):
        check_flip_permutation([0, 0, 1], 3)
    with pytest.raises(ValueError, match=r"in pairs \(p\[p\[j\]\] == j"):
        check_flip_permutation([1, 2, 0], 3)
