"""hmrlab.nn.attention: standard attention against torch's, pooling and LCP/LSP by hand, MACs against measured counts."""

import math

import pytest
import torch
from torch import nn

from hmrlab.complexity import measure
from hmrlab.nn.attention import (
    LCP,
    LSP,
    Attention,
    attention_macs,
    attention_map_bytes,
    pool_channels,
    pool_tokens,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def copy_into_torch_mha(attention: Attention) -> nn.MultiheadAttention:
    mha = nn.MultiheadAttention(attention.channels, attention.heads, batch_first=True).double()
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([attention.q.weight, attention.k.weight, attention.v.weight]))
        mha.in_proj_bias.copy_(torch.cat([attention.q.bias, attention.k.bias, attention.v.bias]))
        mha.out_proj.weight.copy_(attention.out.weight)
        mha.out_proj.bias.copy_(attention.out.bias)
    return mha


@pytest.mark.parametrize("n_q, n_k, heads", [(5, 5, 1), (4, 9, 2), (7, 3, 4)])
def test_standard_attention_equals_torch_multihead_attention(n_q, n_k, heads):
    torch.manual_seed(0)
    attention = Attention(8, heads).double()
    x, context = torch.randn(2, n_q, 8, dtype=torch.float64), torch.randn(2, n_k, 8, dtype=torch.float64)
    expected, expected_weights = copy_into_torch_mha(attention)(x, context, context, average_attn_weights=False)
    out, weights = attention.attend(x, context)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(weights, expected_weights, rtol=0, atol=1e-12)


def test_pool_tokens_by_hand():
    x = torch.arange(2 * 7 * 3, dtype=torch.float64).reshape(2, 7, 3)
    # Divisible: plain means of pairs of tokens.
    torch.testing.assert_close(pool_tokens(x[:, :6], 3), x[:, :6].reshape(2, 3, 2, 3).mean(2))
    # Not divisible: group i covers floor(i N / n) .. ceil((i + 1) N / n) - 1.
    groups = [range(math.floor(i * 7 / 3), math.ceil((i + 1) * 7 / 3)) for i in range(3)]
    expected = torch.stack([x[:, list(g)].mean(1) for g in groups], dim=1)
    torch.testing.assert_close(pool_tokens(x, 3), expected)
    torch.testing.assert_close(pool_tokens(x, 7), x)


def test_pool_channels_by_hand():
    x = torch.randn(2, 3, 4, 8, dtype=torch.float64)
    torch.testing.assert_close(pool_channels(x, 2), x.reshape(2, 3, 4, 2, 4).mean(-1))
    assert pool_channels(x, 8) is x


def lcp_by_hand(module: Attention, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    # LCP written out per head with the module's weights, divisible sizes only.
    heads, n_low = module.heads, module.n_low
    b, n_k, c = context.shape
    pooled = context.reshape(b, n_low, n_k // n_low, c).mean(2)
    q, k, v = module.q(x), module.k(pooled), module.v(pooled)
    d, d_low = c // heads, module.c_low // heads
    outputs = []
    for h in range(heads):
        qh, kh, vh = (t[..., h * d : (h + 1) * d] for t in (q, k, v))
        qh = qh.reshape(*qh.shape[:-1], d_low, d // d_low).mean(-1)
        kh = kh.reshape(*kh.shape[:-1], d_low, d // d_low).mean(-1)
        weights = torch.softmax(qh @ kh.transpose(1, 2) / math.sqrt(d_low), dim=-1)
        outputs.append(weights @ vh)
    return module.out(torch.cat(outputs, dim=-1))


@pytest.mark.parametrize("heads, c_low, n_low", [(1, 2, 3), (2, 4, 2), (4, 4, 6)])
def test_lcp_equals_its_formula(heads, c_low, n_low):
    torch.manual_seed(1)
    lcp = LCP(8, heads, c_low, n_low).double()
    x, context = torch.randn(2, 5, 8, dtype=torch.float64), torch.randn(2, 12, 8, dtype=torch.float64)
    torch.testing.assert_close(lcp(x, context), lcp_by_hand(lcp, x, context), rtol=0, atol=1e-12)


def test_lsp_is_lcp_of_the_tokens_over_themselves():
    torch.manual_seed(2)
    lsp = LSP(8, 2, 4, 3).double()
    x = torch.randn(3, 12, 8, dtype=torch.float64)
    torch.testing.assert_close(lsp(x), lcp_by_hand(lsp, x, x), rtol=0, atol=1e-12)


def test_pooling_to_full_size_is_standard_attention():
    torch.manual_seed(3)
    standard = Attention(8, 2).double()
    pooled = LCP(8, 2, c_low=8, n_low=50).double()  # more pooled tokens than the context has: no pooling
    pooled.load_state_dict(standard.state_dict())
    x, context = torch.randn(2, 4, 8, dtype=torch.float64), torch.randn(2, 6, 8, dtype=torch.float64)
    torch.testing.assert_close(pooled(x, context), standard(x, context), rtol=0, atol=0)


def test_attention_map_shape_rows_and_bytes():
    lcp = LCP(16, 4, 8, 5)
    _, weights = lcp.attend(torch.randn(3, 7, 16), torch.randn(3, 20, 16))
    assert weights.shape == (3, 4, 7, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4, 7))
    assert attention_map_bytes(3, 7, 5, heads=4) == weights.numel() * weights.element_size()
    assert attention_map_bytes(1, 431, 431, dtype=torch.float16) == 431 * 431 * 2


def test_standard_macs_closed_form():
    for n, c in [(17, 64), (431, 64), (5, 12)]:
        assert attention_macs(n, n, c) == 4 * n * c * c + 2 * n * n * c


@pytest.mark.parametrize(
    "n_q, n_k, channels, heads, c_low, n_low",
    [(17, 431, 64, 8, 16, 108), (431, 17, 64, 2, 16, 5), (431, 431, 64, 2, 4, 54), (9, 9, 32, 4, 32, None), (6, 11, 8, 2, 2, 4)],
)
def test_macs_formula_agrees_with_measured_counts(n_q, n_k, channels, heads, c_low, n_low):
    module = Attention(channels, heads, c_low, n_low)
    x, context = torch.zeros(2, n_q, channels), torch.zeros(2, n_k, channels)
    assert measure(module, x, context).macs == 2 * module.macs(n_q, n_k)
    assert measure(module, x, context).params == 4 * channels**2 + 4 * channels


def test_gradcheck_through_lcp():
    torch.manual_seed(4)
    lcp = LCP(4, 2, 2, 3).double()
    x = torch.randn(1, 3, 4, dtype=torch.float64, requires_grad=True)
    context = torch.randn(1, 7, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lcp, (x, context))


def test_bad_inputs_raise_with_the_fix():
    with pytest.raises(ValueError, match="multiple of heads"):
        Attention(10, 3)
    with pytest.raises(ValueError, match="c_low must be a multiple of heads"):
        LCP(64, 8, 4, 10)
    with pytest.raises(ValueError, match="n_low must be a positive"):
        LCP(64, 8, 16, 0)
    lcp = LCP(8, 2, 4, 3)
    with pytest.raises(ValueError, match=r"x must have shape \(B, N, 8\)"):
        lcp(torch.zeros(2, 5, 7), torch.zeros(2, 5, 8))
    with pytest.raises(ValueError, match=r"context must have shape \(B, N, 8\)"):
        lcp(torch.zeros(2, 5, 8), torch.zeros(5, 8))
    with pytest.raises(ValueError, match="same batch size"):
        lcp(torch.zeros(2, 5, 8), torch.zeros(3, 5, 8))
    with pytest.raises(ValueError, match="n_low must be between 1"):
        pool_tokens(torch.zeros(1, 4, 2), 5)
    with pytest.raises(ValueError, match="d_low must be between 1"):
        pool_channels(torch.zeros(1, 1, 4, 2), 3)
