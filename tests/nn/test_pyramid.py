"""hmrlab.nn.pyramid: TPCA's lengths, compression and amplification against their formulas by hand
(means of blocks, nearest-neighbour upsampling), gradcheck."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hmrlab.complexity import measure
from hmrlab.nn.pyramid import TemporalPyramid, amplify, compress, pyramid_lengths

pytestmark = pytest.mark.usefixtures("one_thread")


def test_pyramid_lengths():
    assert pyramid_lengths(243, 3, 2) == [243, 121, 60, 30]
    assert pyramid_lengths(81, 2, 4) == [81, 20, 5]
    assert pyramid_lengths(8, 3, 2) == [8, 4, 2, 1]
    with pytest.raises(ValueError, match="T >= ratio\\*\\*depth = 8"):
        pyramid_lengths(7, 3, 2)
    with pytest.raises(ValueError, match="depth >= 1 and ratio >= 2"):
        pyramid_lengths(27, 0, 2)


def test_compress_divisible_is_the_mean_of_blocks():
    x = torch.randn(2, 3, 16)
    levels = compress(x, [16, 8, 4, 2])
    for level, r in zip(levels, (1, 2, 4, 8)):
        torch.testing.assert_close(level, x.unflatten(-1, (-1, r)).mean(-1))


def _nearest_up(u: torch.Tensor, r: int, length: int) -> torch.Tensor:
    """The initial transposed convolution by hand: each frame repeated r times, zeros for the padding."""
    up = u.repeat_interleave(r, dim=-1)
    return F.pad(up, (0, length - up.shape[-1]))


@pytest.mark.parametrize("frames,depth,ratio", [(16, 3, 2), (27, 3, 2), (81, 2, 4), (10, 1, 3)])
def test_initial_pyramid_is_the_sum_of_upsampled_levels(frames, depth, ratio):
    pyramid = TemporalPyramid(5, depth, ratio)
    x = torch.randn(2, frames, 5)
    lengths = pyramid_lengths(frames, depth, ratio)
    pooled = [x.transpose(1, 2)]
    for length in lengths[1:]:
        pooled.append(F.adaptive_avg_pool1d(pooled[-1], length))
    expected = pooled[-1]
    for level in reversed(pooled[:-1]):
        expected = level + _nearest_up(expected, ratio, level.shape[-1])
    torch.testing.assert_close(pyramid(x), expected.transpose(1, 2))


def test_pyramid_gradcheck_and_amplify_check():
    torch.manual_seed(0)
    pyramid = TemporalPyramid(3, 2, 2).double()
    for up in pyramid.upsample:  # away from the initialisation, so that every weight matters
        nn.init.normal_(up.weight)
        nn.init.normal_(up.bias)
    x = torch.randn(2, 11, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(pyramid, (x,))
    with pytest.raises(ValueError, match="one upsampling layer per level"):
        amplify(compress(x.transpose(1, 2), [11, 5, 2]), pyramid.upsample[:1])


def test_pyramid_of_a_constant_is_a_constant_times_levels():
    # Pooling keeps a constant, nearest upsampling too, so D + 1 levels sum to (D + 1) c (divisible T).
    pyramid = TemporalPyramid(4, 3, 2)
    torch.testing.assert_close(pyramid(torch.full((1, 24, 4), 0.5)), torch.full((1, 24, 4), 2.0))


def test_pyramid_parameters_and_macs_by_formula():
    c, depth, ratio, t = 6, 3, 2, 27
    cost = measure(TemporalPyramid(c, depth, ratio), torch.zeros(1, t, c))
    assert cost.params == (ratio + 1) * c * depth
    assert cost.macs == ratio * c * sum(pyramid_lengths(t, depth, ratio)[1:])
