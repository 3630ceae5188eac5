"""hmrlab.nn.bitpack: packing round trips, popcount against Python's, XNOR-popcount equal to float sign products."""

import pytest
import torch
import torch.nn.functional as F

from hmrlab.nn.binary import BinaryConv2d, BinaryLinear
from hmrlab.nn.bitpack import (
    PackedBinaryConv2d,
    PackedBinaryLinear,
    pack_bits,
    popcount,
    storage_bytes,
    unpack_bits,
    xnor_conv2d,
    xnor_dot,
    xnor_linear,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def signs(*shape, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, shape, generator=generator).float() * 2 - 1


@pytest.mark.parametrize("n", [1, 7, 63, 64, 65, 200])
def test_pack_unpack_round_trip(n):
    x = signs(3, 2, n)
    words = pack_bits(x)
    assert words.dtype == torch.int64 and words.shape == (3, 2, -(-n // 64))
    assert torch.equal(unpack_bits(words, n), x)


def test_bit_order_by_hand():
    # +1 at positions 0 and 3 only: the word is 2^0 + 2^3 = 9; all +1 over 64 bits is -1 (all bits set).
    x = -torch.ones(64)
    x[[0, 3]] = 1
    assert pack_bits(x).item() == 9
    assert pack_bits(torch.ones(64)).item() == -1


def test_popcount_matches_python():
    generator = torch.Generator().manual_seed(1)
    words = torch.randint(-(2**63), 2**63 - 1, (500,), generator=generator, dtype=torch.int64)
    words = torch.cat([words, torch.tensor([0, -1, 1, -(2**63), 2**63 - 1])])
    expected = [bin(w & (2**64 - 1)).count("1") for w in words.tolist()]
    assert popcount(words).tolist() == expected


@pytest.mark.parametrize("n", [5, 64, 130])
def test_xnor_dot_is_the_dot_product(n):
    a, w = signs(10, n, seed=2), signs(10, n, seed=3)
    assert torch.equal(xnor_dot(pack_bits(a), pack_bits(w), n), (a * w).sum(-1).long())


def test_xnor_dot_with_missing_values():
    # Values in {-1, 0, +1}: the zeros are left out through the valid-bit plane.
    generator = torch.Generator().manual_seed(4)
    a = torch.randint(-1, 2, (8, 100), generator=generator).float()
    w = signs(8, 100, seed=5)
    valid = (a != 0).float() * 2 - 1
    a_words = pack_bits(torch.where(a > 0, 1.0, -1.0))
    assert torch.equal(xnor_dot(a_words, pack_bits(w), 100, pack_bits(valid)), (a * w).sum(-1).long())


@pytest.mark.parametrize("n", [3, 64, 100])
def test_xnor_linear_equals_matmul(n):
    x, w = signs(5, n, seed=6), signs(7, n, seed=7)
    out = xnor_linear(x, w)
    assert out.dtype == torch.int64
    assert torch.equal(out, (x @ w.T).round().long())


@pytest.mark.parametrize(
    "channels, kernel, stride, padding, dilation",
    [(3, 3, 1, 0, 1), (5, 3, 1, 1, 1), (16, 3, 2, 1, 1), (8, 1, 1, 0, 1), (4, (3, 5), (2, 1), (1, 2), 1), (7, 3, 1, 2, 2)],
)
def test_xnor_conv2d_equals_float_sign_conv(channels, kernel, stride, padding, dilation):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    x, w = signs(2, channels, 9, 8, seed=8), signs(6, channels, kh, kw, seed=9)
    ours = xnor_conv2d(x, w, stride, padding, dilation, chunk=4)
    expected = F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation)
    assert torch.equal(ours, expected.round().long())


def test_packed_layers_with_scale():
    torch.manual_seed(0)
    weight, scale = torch.randn(6, 4, 3, 3), torch.rand(6)
    x = signs(2, 4, 7, 7, seed=10)
    conv = PackedBinaryConv2d(weight, scale, stride=1, padding=1)
    binary = torch.where(weight >= 0, 1.0, -1.0)
    expected = F.conv2d(x, binary, padding=1) * scale[:, None, None]
    assert torch.allclose(conv(x), expected)
    linear = PackedBinaryLinear(weight.flatten(1), scale)
    flat = signs(3, 36, seed=11)
    assert torch.allclose(linear(flat), (flat @ binary.flatten(1).T) * scale)


def test_packed_layers_from_trained_binary_layers():
    torch.manual_seed(1)
    conv = BinaryConv2d(5, 6, 3, stride=2, padding=1, bias=True)
    linear = BinaryLinear(70, 4, bias=True)
    with torch.no_grad():  # thresholds and biases away from their zero initialisation
        for layer in (conv, linear):
            layer.input_sign.threshold.uniform_(-0.5, 0.5)
            layer.bias.uniform_(-1, 1)
    x, flat = torch.randn(2, 5, 9, 9), torch.randn(3, 70)
    torch.testing.assert_close(PackedBinaryConv2d.from_layer(conv)(conv.input_sign(x)), conv(x))
    torch.testing.assert_close(PackedBinaryLinear.from_layer(linear)(linear.input_sign(flat)), linear(flat))
    with pytest.raises(ValueError, match="binary weights"):
        PackedBinaryConv2d.from_layer(torch.nn.Conv2d(2, 2, 3))


def test_storage_is_32_times_smaller():
    weight = torch.randn(256, 256, 3, 3)
    packed = PackedBinaryConv2d(weight)
    assert storage_bytes(weight) == 32 * storage_bytes(packed.weight_words)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="only \\+1 and -1"):
        pack_bits(torch.tensor([1.0, 0.5]))
    with pytest.raises(ValueError, match="floating-point"):
        pack_bits(torch.tensor([1, -1]))
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        unpack_bits(torch.zeros(3, dtype=torch.int64), 100)
    with pytest.raises(ValueError, match="same C"):
        xnor_conv2d(signs(1, 3, 5, 5), signs(2, 4, 3, 3))
    with pytest.raises(ValueError, match="same n"):
        xnor_linear(signs(2, 3), signs(2, 4))
    with pytest.raises(ValueError, match="int64"):
        popcount(torch.zeros(2, dtype=torch.int32))
