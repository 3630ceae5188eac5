"""hmrlab.models.lifd_hmr: shapes, the identity path through DWT/IDWT, gradients, complexity by hand; LDMP's
parallel branches against the sequential ones, and the full model's mesh and joints against the body-model matrices."""

import math

import numpy as np
import pytest
import pywt
import torch
from torch import nn

from hmrlab import body
from hmrlab.complexity import measure
from hmrlab.models.lifd_hmr import (
    LDMP,
    LIFDHMR,
    AttentionBlock,
    ConvBlock,
    DirectExtractor,
    LIFDExtractor,
    clip_features,
    nearest_joint,
)
from hmrlab.nn.attention import attention_macs
from hmrlab.nn.backbones import resnet18

pytestmark = pytest.mark.usefixtures("one_thread")


def small(cls=LIFDExtractor, **kwargs):
    torch.manual_seed(0)
    return cls(**{"in_channels": 12, "channels": 8, "heads": 2, **kwargs})


@pytest.mark.parametrize("cls", [LIFDExtractor, DirectExtractor])
@pytest.mark.parametrize("size", [(7, 7), (8, 6), (5, 8), (1, 1)])
def test_shapes_odd_and_even(cls, size):
    model = small(cls)
    features = torch.randn(2, 3, 12, *size)
    assert model.hybrid(features.flatten(0, 1)).shape == (6, 8, *size)
    assert model(features).shape == (2, 3, 8)


@pytest.mark.parametrize("wavelet", ["haar", "db2", "bior2.2"])
@pytest.mark.parametrize("mode", ["symmetric", "periodization", "zero"])
@pytest.mark.parametrize("size", [(7, 7), (8, 6)])
def test_identity_branches_give_the_projected_map(wavelet, mode, size):
    # With both blocks replaced by identities the extractor is IDWT(DWT(x)): perfect reconstruction.
    model = small(wavelet=wavelet, mode=mode).double()
    model.attention, model.convolution = nn.Identity(), nn.Identity()
    features = torch.randn(4, 12, *size, dtype=torch.float64)
    torch.testing.assert_close(model.hybrid(features), model.project(features), rtol=0, atol=1e-12)


def test_lifd_equals_its_wavelet_formula():
    # F' = IDWT(a(cA), c(cH), c(cV), c(cD)), with PyWavelets doing the transforms.
    model = small(in_channels=8, wavelet="db2").double().eval()
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    cA, (cH, cV, cD) = pywt.dwt2(x.numpy(), "db2", axes=(-2, -1))
    cA, cH, cV, cD = map(torch.from_numpy, (cA, cH, cV, cD))
    with torch.no_grad():
        bands = (model.attention(cA).numpy(), tuple(model.convolution(b).numpy() for b in (cH, cV, cD)))
        expected = torch.from_numpy(pywt.idwt2(bands, "db2", axes=(-2, -1))[..., :6, :5])
        torch.testing.assert_close(model.hybrid(x), expected, rtol=0, atol=1e-12)


def test_direct_is_the_sum_of_the_residual_updates():
    model = small(DirectExtractor, in_channels=8).double().eval()
    x = torch.randn(2, 8, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        expected = x + (model.attention(x) - x) + (model.convolution(x) - x)
        torch.testing.assert_close(model.hybrid(x), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cls", [LIFDExtractor, DirectExtractor])
def test_gradients_reach_every_parameter_and_the_input(cls):
    model = small(cls)
    features = torch.randn(2, 2, 12, 5, 6, requires_grad=True)
    model(features).square().sum().backward()
    assert features.grad is not None and features.grad.abs().sum() > 0
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_gradcheck_through_the_extractor():
    model = small(LIFDExtractor, in_channels=8, channels=4, wavelet="db2").double().eval()
    x = torch.randn(1, 1, 8, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(model, (x,))


@pytest.mark.parametrize("channels, kernel, h, w", [(16, 3, 5, 4), (8, 5, 3, 3)])
def test_conv_block_complexity_by_hand(channels, kernel, h, w):
    cost = measure(ConvBlock(channels, kernel), torch.zeros(2, channels, h, w))
    assert cost.params == (kernel**2 + 1) * channels**2 + 3 * channels
    assert cost.macs == 2 * h * w * (kernel**2 + 1) * channels**2


@pytest.mark.parametrize("channels, heads, ratio, h, w", [(16, 4, 2.0, 4, 3), (12, 3, 4.0, 2, 5)])
def test_attention_block_complexity_by_hand(channels, heads, ratio, h, w):
    hidden, tokens = int(ratio * channels), h * w
    cost = measure(AttentionBlock(channels, heads, ratio), torch.zeros(1, channels, h, w))
    assert cost.params == 4 * channels**2 + 2 * hidden * channels + 9 * channels + hidden
    assert cost.macs == tokens * (4 * channels**2 + 2 * hidden * channels) + 2 * tokens**2 * channels


def test_attention_block_is_torch_multihead_attention_over_the_positions():
    # An independent reference: torch's own attention and LayerNorm/GELU, on the map's h w positions.
    torch.manual_seed(0)
    block = AttentionBlock(8, heads=2, mlp_ratio=2.0).double()
    x = torch.randn(2, 8, 3, 5, dtype=torch.float64)
    attention = block.attention
    mha = nn.MultiheadAttention(8, 2, batch_first=True).double()
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([attention.q.weight, attention.k.weight, attention.v.weight]))
        mha.in_proj_bias.copy_(torch.cat([attention.q.bias, attention.k.bias, attention.v.bias]))
        mha.out_proj.load_state_dict(attention.out.state_dict())
    tokens = x.flatten(2).transpose(1, 2)
    normed = nn.functional.layer_norm(tokens, (8,), block.norm1.weight, block.norm1.bias)
    tokens = tokens + mha(normed, normed, normed, need_weights=False)[0]
    normed = nn.functional.layer_norm(tokens, (8,), block.norm2.weight, block.norm2.bias)
    tokens = tokens + block.mlp[3](nn.functional.gelu(block.mlp[0](normed)))
    torch.testing.assert_close(block(x), tokens.transpose(1, 2).reshape(2, 8, 3, 5), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 8, H, W\); got \(8, 3, 5\)"):
        block(x[0])


def test_extractor_macs_are_the_sum_of_its_blocks():
    # The DWT's and IDWT's filters are tiny but are convolutions: counted, at 4 MACs per coefficient each.
    model = small()
    x = torch.zeros(1, 1, 12, 8, 6)
    blocks = (measure(model.project, x[0]).macs + measure(model.attention, torch.zeros(1, 8, 4, 3)).macs
              + measure(model.convolution, torch.zeros(3, 8, 4, 3)).macs)
    transforms = 2 * 8 * (4 * 4 * 3) * 4
    assert measure(model, x).macs == blocks + transforms


def test_ablation_twin_has_the_same_parameters_and_more_macs():
    lifd, direct = LIFDExtractor(), DirectExtractor()
    assert sum(p.numel() for p in lifd.parameters()) == sum(p.numel() for p in direct.parameters())
    x = torch.zeros(1, 1, 2048, 7, 7)
    assert measure(lifd, x).macs < measure(direct, x).macs


def test_clip_features_match_per_frame_backbone():
    torch.manual_seed(0)
    backbone = resnet18().eval()
    clips = torch.randn(2, 3, 3, 40, 56)
    with torch.no_grad():
        maps = clip_features(backbone, clips, "layer3")
        assert maps.shape == (2, 3, 256, 3, 4)
        torch.testing.assert_close(maps[1, 2], backbone.forward_features(clips[1, 2:3], "layer3")["layer3"][0])


def test_bad_inputs_raise_with_the_expected_shape():
    model = small()
    with pytest.raises(ValueError, match=r"\(B, T, 12, H, W\)"):
        model(torch.zeros(2, 12, 5, 5))
    with pytest.raises(ValueError, match=r"\(N, 12, H, W\)"):
        model.hybrid(torch.zeros(2, 11, 5, 5))
    with pytest.raises(ValueError, match="divisible"):
        LIFDExtractor(channels=10, heads=3)
    with pytest.raises(ValueError, match="odd"):
        ConvBlock(8, kernel_size=2)
    with pytest.raises(ValueError, match="wavelet"):
        LIFDExtractor(wavelet="nonsense")
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        clip_features(resnet18(), torch.zeros(1, 3, 8, 8))


# --- Stage 2: LDMP and the full model ----------------------------------------------------------------

def small_ldmp(**kwargs):
    torch.manual_seed(0)
    vertex_joint = torch.tensor([0, 1, 1, 2, 3, 3, 4, 0, 2, 4, 1, 0])  # 12 vertices, 5 joints
    sizes = {"num_joints": 5, "channels": 16, "joint_heads": 4, "vertex_heads": 2, "depth": 2, "context_dim": 6}
    return LDMP(vertex_joint, **{**sizes, **kwargs})


def test_nearest_joint_matches_brute_force():
    generator = np.random.default_rng(0)
    vertices, joints = generator.normal(size=(40, 3)), generator.normal(size=(6, 3))
    expected = [int(np.argmin([np.linalg.norm(v - j) for j in joints])) for v in vertices]
    assert nearest_joint(torch.tensor(vertices), torch.tensor(joints)).tolist() == expected


def test_ldmp_starts_vertices_at_their_joint():
    model = small_ldmp()
    for head in (model.joint_head, model.vertex_head):
        nn.init.zeros_(head.weight), nn.init.zeros_(head.bias)
    joints = torch.randn(3, 5, 3)
    out_joints, vertices = model(joints, torch.randn(3, 6))
    torch.testing.assert_close(out_joints, joints, rtol=0, atol=0)
    torch.testing.assert_close(vertices, joints[:, [0, 1, 1, 2, 3, 3, 4, 0, 2, 4, 1, 0]], rtol=0, atol=0)


@pytest.mark.parametrize("ratios", [(4, 4), (1, 1)])
def test_parallel_equals_sequential_values_and_gradients(ratios):
    model = small_ldmp(channel_ratio=ratios[0], token_ratio=ratios[1])
    joints, context = torch.randn(2, 5, 3, requires_grad=True), torch.randn(2, 6)
    results = []
    for parallel in (False, True):
        model.zero_grad()
        joints.grad = None
        out = model(joints, context, parallel=parallel)
        (out[0].square().sum() + out[1].sin().sum()).backward()
        results.append((out, joints.grad.clone(), [p.grad.clone() for p in model.parameters()]))
    (seq, seq_grad, seq_params), (par, par_grad, par_params) = results
    assert torch.equal(seq[0], par[0]) and torch.equal(seq[1], par[1])
    assert torch.equal(seq_grad, par_grad)
    assert all(torch.equal(a, b) for a, b in zip(seq_params, par_params))


def test_parallel_without_grad_records_no_graph():
    model = small_ldmp()
    with torch.no_grad():
        joints, vertices = model(torch.randn(1, 5, 3), torch.randn(1, 6), parallel=True)
    assert joints.grad_fn is None and vertices.grad_fn is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (side streams)")
def test_parallel_on_cuda_streams_equals_sequential():
    model = small_ldmp().cuda()
    joints, context = torch.randn(4, 5, 3, device="cuda"), torch.randn(4, 6, device="cuda")
    with torch.no_grad():
        seq, par = model(joints, context), model(joints, context, parallel=True)
    torch.testing.assert_close(par, seq, rtol=0, atol=0)


@pytest.mark.parametrize("channel_ratio, token_ratio", [(1, 1), (4, 4), (2, 8)])
def test_ldmp_macs_by_hand(channel_ratio, token_ratio):
    # Embeddings and heads (3 <-> C per token), per layer and branch: the context projection, LCP,
    # LSP (attention_macs, itself checked against measured counts) and two MLPs of width 4 C.
    model = small_ldmp(channel_ratio=channel_ratio, token_ratio=token_ratio)
    j, v, c, d, depth = 5, 12, 16, 6, 2
    c_low = c // channel_ratio
    pose = attention_macs(j, v, c, c_low, math.ceil(v / token_ratio)) + attention_macs(j, j, c, c_low, math.ceil(j / token_ratio))
    mesh = attention_macs(v, j, c, c_low, math.ceil(j / token_ratio)) + attention_macs(v, v, c, c_low, math.ceil(v / token_ratio))
    per_layer = 2 * d * c + pose + mesh + 4 * (j + v) * c * 4 * c
    expected = 2 * (j + v) * 3 * c + depth * per_layer
    assert measure(model, torch.zeros(1, 5, 3), torch.zeros(1, 6)).macs == expected


def test_pooled_and_standard_ldmp_have_the_same_parameters():
    pooled, standard = small_ldmp(), small_ldmp(channel_ratio=1, token_ratio=1)
    assert [p.shape for p in pooled.parameters()] == [p.shape for p in standard.parameters()]
    x = (torch.zeros(1, 5, 3), torch.zeros(1, 6))
    assert measure(pooled, *x).macs < measure(standard, *x).macs


@pytest.fixture(scope="module")
def body_arrays():
    return body.body_model_arrays("smpl")


def small_lifd_hmr(arrays, backbone=None, in_channels=12):
    torch.manual_seed(0)
    return LIFDHMR(arrays, backbone, in_channels=in_channels, channels=8, frames=4, pose_dim=16, pose_depth=1,
                   gru_hidden=8, ldmp_channels=16, ldmp_depth=1, channel_ratio=2)


def test_full_model_mesh_is_the_upsampled_coarse_mesh_and_joints_come_from_it(body_arrays):
    model = small_lifd_hmr(body_arrays).eval()
    maps, keypoints = torch.randn(2, 4, 12, 3, 3), torch.rand(2, 4, 17, 2)
    with torch.no_grad():
        out = model.forward_features(maps, keypoints)
    full, coarse = len(body_arrays["v_template"]), len(body_arrays["downsample"])
    assert out.vertices.shape == (2, full, 3) and out.coarse_vertices.shape == (2, coarse, 3)
    assert out.joints.shape == out.ldmp_joints.shape == (2, 17, 3) and out.poses_3d.shape == (2, 4, 17, 3)
    coarse_np = out.coarse_vertices.double().numpy()
    expected = np.einsum("nv,bvc->bnc", body_arrays["upsample"].astype(np.float64), coarse_np)
    np.testing.assert_allclose(out.vertices.numpy(), expected, atol=1e-5)
    joints = np.einsum("jn,bnc->bjc", body_arrays["J_regressor_h36m"].astype(np.float64), expected)
    np.testing.assert_allclose(out.joints.numpy(), joints, atol=1e-5)


def test_full_model_ldmp_refines_the_middle_frame(body_arrays):
    model = small_lifd_hmr(body_arrays).eval()
    for head in (model.ldmp.joint_head, model.ldmp.vertex_head):
        nn.init.zeros_(head.weight), nn.init.zeros_(head.bias)
    with torch.no_grad():
        out = model.forward_features(torch.randn(1, 4, 12, 3, 3), torch.rand(1, 4, 17, 2))
    torch.testing.assert_close(out.ldmp_joints, out.poses_3d[:, 2], rtol=0, atol=0)


def test_full_model_from_images_parallel_equals_sequential(body_arrays):
    model = small_lifd_hmr(body_arrays, resnet18(), in_channels=512).eval()
    clips, keypoints = torch.randn(1, 4, 3, 32, 32), torch.rand(1, 4, 17, 2)
    with torch.no_grad():
        sequential, parallel = model(clips, keypoints), model(clips, keypoints, parallel=True)
    for a, b in zip(sequential, parallel):
        assert torch.equal(a, b)


def test_stage_two_bad_inputs_raise_with_the_fix(body_arrays):
    with pytest.raises(ValueError, match="vertex_joint must be"):
        LDMP(torch.tensor([0, 5]), num_joints=5)
    with pytest.raises(ValueError, match="channel_ratio must divide"):
        small_ldmp(channel_ratio=3)
    model = small_ldmp()
    with pytest.raises(ValueError, match=r"joints must have shape \(B, 5, 3\)"):
        model(torch.zeros(2, 4, 3), torch.zeros(2, 6))
    with pytest.raises(ValueError, match=r"context must have shape \(B, 6\)"):
        model(torch.zeros(2, 5, 3), torch.zeros(1, 6))
    with pytest.raises(ValueError, match="lacks"):
        LIFDHMR({"v_template": body_arrays["v_template"]})
    lifd = small_lifd_hmr(body_arrays)
    with pytest.raises(ValueError, match=r"keypoints_2d must have shape \(B, T, 17, 2\)"):
        lifd.forward_features(torch.zeros(1, 4, 12, 3, 3), torch.zeros(1, 4, 24, 2))
    with pytest.raises(ValueError, match="no backbone"):
        lifd(torch.zeros(1, 4, 3, 32, 32), torch.zeros(1, 4, 17, 2))
    with pytest.raises(ValueError, match=r"vertices must have shape \(V, 3\)"):
        nearest_joint(torch.zeros(4, 2), torch.zeros(3, 3))
