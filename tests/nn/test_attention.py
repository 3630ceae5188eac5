"""hmrlab.nn.attention: the dot product, `Attention` (self, cross, memory, key/value transforms) and
`TransformerBlock` against torch's (`F.scaled_dot_product_attention`, `nn.MultiheadAttention`,
`nn.TransformerEncoderLayer`), pooling and LCP/LSP by hand, parameters and MACs against their formulas."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hmrlab.complexity import measure
from hmrlab.nn.attention import (
    LCP,
    LSP,
    Attention,
    TransformerBlock,
    attention_macs,
    attention_map_bytes,
    pool_channels,
    pool_tokens,
    scaled_dot_product_attention,
)
from hmrlab.nn.pyramid import TemporalPyramid

pytestmark = pytest.mark.usefixtures("one_thread")


def copy_into_torch_mha(attention: Attention) -> nn.MultiheadAttention:
    mha = nn.MultiheadAttention(attention.channels, attention.heads, batch_first=True).double()
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([attention.q.weight, attention.k.weight, attention.v.weight]))
        mha.in_proj_bias.copy_(torch.cat([attention.q.bias, attention.k.bias, attention.v.bias]))
        mha.out_proj.weight.copy_(attention.out.weight)
        mha.out_proj.bias.copy_(attention.out.bias)
    return mha


def split_heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    return t.unflatten(-1, (heads, -1)).transpose(1, 2)  # (B, N, C) -> (B, h, N, d)


def double(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64)


def test_dot_product_matches_torch_and_rows_are_distributions():
    q, k, v = torch.randn(2, 3, 5, 4), torch.randn(2, 3, 7, 4), torch.randn(2, 3, 7, 6)
    out, weights = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v))
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 5))
    with pytest.raises(ValueError, match="agree on d and Lk"):
        scaled_dot_product_attention(q, k[..., :3], v)


@pytest.mark.parametrize("n_q, n_k, heads", [(5, 5, 1), (4, 9, 2), (7, 3, 4)])
def test_standard_attention_equals_torch_multihead_attention(n_q, n_k, heads):
    torch.manual_seed(0)
    attention = Attention(8, heads).double()
    x, context = double(2, n_q, 8), double(2, n_k, 8)
    expected, expected_weights = copy_into_torch_mha(attention)(x, context, context, average_attn_weights=False)
    out, weights, keys, values = attention.attend(x, context)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(weights, expected_weights, rtol=0, atol=1e-12)
    torch.testing.assert_close(keys, attention.k(context), rtol=0, atol=0)
    torch.testing.assert_close(values, attention.v(context), rtol=0, atol=0)


def test_self_attention_is_attention_over_itself():
    torch.manual_seed(0)
    attention = Attention(8, 2).double()
    x = double(3, 6, 8)
    expected = copy_into_torch_mha(attention)(x, x, x, need_weights=False)[0]
    torch.testing.assert_close(attention(x), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(attention(x), attention(x, x), rtol=0, atol=0)


def test_memory_is_cross_attention_on_the_concatenation():
    torch.manual_seed(0)
    layer = Attention(8, heads=2).double()
    x, memory = double(3, 5, 8), double(2, 3, 2, 8)
    got = layer.attend(x, memory=(memory[0], memory[1]))
    k = torch.cat([layer.k(x), memory[0]], 1)
    v = torch.cat([layer.v(x), memory[1]], 1)
    expected = F.scaled_dot_product_attention(split_heads(layer.q(x), 2), split_heads(k, 2), split_heads(v, 2))
    torch.testing.assert_close(got.output, layer.out(expected.transpose(1, 2).flatten(2)))
    assert got.weights.shape == (3, 2, 5, 7)
    assert got.keys.shape == got.values.shape == (3, 5, 8)  # the memory is not part of the returned keys
    inputs = (x.requires_grad_(), memory[0].requires_grad_())
    assert torch.autograd.gradcheck(lambda x, m: layer(x, memory=(m, m)), inputs)


def test_key_and_value_transforms_act_on_the_projections_before_the_memory():
    # RTPCA's temporal attention: a pyramid each on K and V, then the previous block's keys appended.
    torch.manual_seed(0)
    pyramids = [TemporalPyramid(8, 2, 2).double() for _ in range(2)]
    for pyramid in pyramids:  # away from the initialisation, so that a swap of K and V would show
        for up in pyramid.upsample:
            nn.init.normal_(up.weight)
    layer = Attention(8, 2, key_transform=pyramids[0], value_transform=pyramids[1]).double()
    x, memory = double(2, 12, 8), (double(2, 3, 8), double(2, 3, 8))
    got = layer.attend(x, memory=memory)
    keys, values = pyramids[0](layer.k(x)), pyramids[1](layer.v(x))
    torch.testing.assert_close(got.keys, keys, rtol=0, atol=0)
    torch.testing.assert_close(got.values, values, rtol=0, atol=0)
    k, v = torch.cat([keys, memory[0]], 1), torch.cat([values, memory[1]], 1)
    expected = F.scaled_dot_product_attention(split_heads(layer.q(x), 2), split_heads(k, 2), split_heads(v, 2))
    torch.testing.assert_close(got.output, layer.out(expected.transpose(1, 2).flatten(2)))
    assert measure(layer, x).params == 4 * 8**2 + 4 * 8 + 2 * 2 * (2 + 1) * 8  # + (r + 1) C D per pyramid


def test_fused_qkv_layout_maps_onto_q_k_v():
    # The documented mapping of a timm-style fused projection (MixSTE's authors' attn.qkv, attn.proj).
    torch.manual_seed(0)
    layer, heads = Attention(12, 3).double(), 3
    qkv = nn.Linear(12, 36).double()
    with torch.no_grad():
        qkv.weight.copy_(torch.cat([layer.q.weight, layer.k.weight, layer.v.weight]))
        qkv.bias.copy_(torch.cat([layer.q.bias, layer.k.bias, layer.v.bias]))
    x = double(2, 5, 12)
    q, k, v = qkv(x).reshape(2, 5, 3, heads, 4).permute(2, 0, 3, 1, 4)  # the authors' reshape
    weights = (q @ k.transpose(-2, -1) * 4**-0.5).softmax(-1)
    expected = layer.out((weights @ v).transpose(1, 2).reshape(2, 5, 12))
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-12)


def test_attention_dropout_drops_weights_only_while_training():
    torch.manual_seed(0)
    layer = Attention(8, 2, dropout=1.0)
    x = torch.randn(2, 4, 8)
    torch.testing.assert_close(layer.train()(x), layer.out.bias.expand(2, 4, 8))  # every weight dropped
    reference = Attention(8, 2)
    reference.load_state_dict(layer.state_dict())
    torch.testing.assert_close(layer.eval()(x), reference(x), rtol=0, atol=0)


def copy_into_torch_encoder_layer(block: TransformerBlock) -> nn.TransformerEncoderLayer:
    attention, mlp = block.attention, block.mlp
    layer = nn.TransformerEncoderLayer(
        block.channels, attention.heads, mlp[0].out_features, dropout=0.0, activation="gelu",
        batch_first=True, norm_first=True,
    ).double()
    layer.self_attn = copy_into_torch_mha(attention)
    with torch.no_grad():
        for ours, theirs in ((block.norm1, layer.norm1), (block.norm2, layer.norm2), (mlp[0], layer.linear1),
                             (mlp[3], layer.linear2)):
            theirs.weight.copy_(ours.weight)
            theirs.bias.copy_(ours.bias)
    return layer.eval()


@pytest.mark.parametrize("channels, heads, mlp_ratio", [(8, 2, 2.0), (12, 3, 1.5), (6, 1, 4.0)])
def test_transformer_block_equals_torch_pre_norm_encoder_layer(channels, heads, mlp_ratio):
    torch.manual_seed(0)
    block = TransformerBlock(channels, heads, mlp_ratio).double()
    for norm in (block.norm1, block.norm2):  # away from LayerNorm's (1, 0) initialisation
        nn.init.normal_(norm.weight)
        nn.init.normal_(norm.bias)
    x = double(3, 7, channels)
    with torch.no_grad():
        expected = copy_into_torch_encoder_layer(block)(x)
    torch.testing.assert_close(block(x), expected, rtol=0, atol=1e-12)
    out, attended = block.attend(x)
    torch.testing.assert_close(out, block(x), rtol=0, atol=0)
    assert attended.weights.shape == (3, heads, 7, 7)


@pytest.mark.parametrize("mlp_ratio", [None, 0])
def test_transformer_block_without_mlp_is_the_attention_half(mlp_ratio):
    torch.manual_seed(0)
    block = TransformerBlock(8, 2, mlp_ratio).double()
    assert block.mlp is None and block.norm2 is None
    x = double(2, 5, 8)
    normed = F.layer_norm(x, (8,), block.norm1.weight, block.norm1.bias)
    expected = x + copy_into_torch_mha(block.attention)(normed, normed, normed, need_weights=False)[0]
    torch.testing.assert_close(block(x), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "channels, heads, mlp_ratio, n, m, pyramid_depth",
    [(16, 4, 2.0, 9, 0, 0), (12, 3, 1.5, 6, 0, 0), (8, 2, None, 5, 0, 0), (8, 2, 2.0, 16, 2, 3), (6, 2, 2.0, 9, 4, 0)],
)
def test_transformer_block_parameters_and_macs_by_formula(channels, heads, mlp_ratio, n, m, pyramid_depth):
    c, hidden = channels, int(channels * mlp_ratio) if mlp_ratio else 0
    transforms = {}
    if pyramid_depth:
        transforms = {f"{s}_transform": TemporalPyramid(c, pyramid_depth, 2) for s in ("key", "value")}
    block = TransformerBlock(c, heads, mlp_ratio, **transforms)
    memory = (torch.zeros(2, m, c), torch.zeros(2, m, c)) if m else None
    cost = measure(block, torch.zeros(2, n, c), memory=memory)
    pyramid_params = 2 * pyramid_depth * (2 + 1) * c
    pyramid_macs = 2 * 2 * c * sum(n // 2**level for level in range(1, pyramid_depth + 1))
    if mlp_ratio:
        assert cost.params == 4 * c**2 + 2 * hidden * c + 9 * c + hidden + pyramid_params
    else:
        assert cost.params == 4 * c**2 + 6 * c
    assert cost.macs == 2 * (n * (4 * c**2 + 2 * hidden * c) + 2 * n * (n + m) * c + pyramid_macs)
    assert block.attention.macs(n, n, m) == n * 4 * c**2 + 2 * n * (n + m) * c


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
    weights = lcp.attend(torch.randn(3, 7, 16), torch.randn(3, 20, 16)).weights
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
    with pytest.raises(ValueError, match="divisible by heads"):
        Attention(10, 3)
    with pytest.raises(ValueError, match="divisible by heads"):
        TransformerBlock(10, 3)
    with pytest.raises(ValueError, match="mlp_ratio must be positive"):
        TransformerBlock(8, 2, -1.0)
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
    with pytest.raises(ValueError, match=r"x is empty \(shape \(2, 0, 8\)\)"):
        lcp(torch.zeros(2, 0, 8), torch.zeros(2, 5, 8))
    with pytest.raises(ValueError, match=r"context is empty"):
        lcp(torch.zeros(2, 5, 8), torch.zeros(2, 0, 8))
    attention = Attention(8, 2)
    with pytest.raises(ValueError, match=r"memory values must have shape \(B, M, 8\); got \(2, 3, 4\)"):
        attention(torch.zeros(2, 5, 8), memory=(torch.zeros(2, 3, 8), torch.zeros(2, 3, 4)))
    with pytest.raises(ValueError, match=r"same shape \(B, M, 8\) with the queries' B = 2"):
        attention(torch.zeros(2, 5, 8), memory=(torch.zeros(3, 3, 8), torch.zeros(3, 3, 8)))
    with pytest.raises(ValueError, match="memory must be a pair"):
        attention(torch.zeros(2, 5, 8), memory=torch.zeros(2, 3, 8))
    with pytest.raises(ValueError, match="n_low must be between 1"):
        pool_tokens(torch.zeros(1, 4, 2), 5)
    with pytest.raises(ValueError, match="d_low must be between 1"):
        pool_channels(torch.zeros(1, 1, 4, 2), 3)
