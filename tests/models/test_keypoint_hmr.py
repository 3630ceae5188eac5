"""hmrlab.models.keypoint_hmr: the GAU against its equations, decoders against closed forms, the whole
network as an IK round trip (ground-truth keypoints in, ground-truth mesh out), the losses by hand."""

import math

import pytest
import torch
from torch import nn

from hmrlab import paths
from hmrlab.body import SMPL_24, body_model_arrays
from hmrlab.complexity import measure
from hmrlab.data import load_coco_keypoints
from hmrlab.data.datasets import CocoCrops
from hmrlab.geometry import matrix_to_axis_angle
from hmrlab.models.keypoint_hmr import (
    EPSILON,
    DeconvDecoder,
    GatedAttentionUnit,
    KeypointEstimator,
    KeypointHMR,
    Pretrain2D,
    SelfAttentionBlock,
    heatmap_decode,
    keypoint_hmr_loss,
    mesh_targets,
    pretrain_loss,
    smpl_parameter_losses,
)
from hmrlab.body.lbs import BodyModel
from hmrlab.nn.keypoints import KeypointTemplate, keypoint_template
from hmrlab.nn.mgfenet import MGFENet
from hmrlab.nn.rle import RealNVP, rle_loss
from hmrlab.training.tasks.mesh import pretrain_2d, train_keypoint_hmr

pytestmark = pytest.mark.usefixtures("one_thread")

SYNTH = paths.SYNTH_3DPW
LEAVES = [10, 11, 15, 22, 23]  # SMPL joints without children: IK cannot see their rotation


@pytest.fixture(scope="module")
def arrays():
    return body_model_arrays("smpl")


@pytest.fixture(scope="module")
def template(arrays):
    # 24 joints and three surface markers: small, and built without the greedy search
    return KeypointTemplate("test", tuple(SMPL_24.joint_names), (), ("m1", "m2", "m3"), (0, 500, 4000),
                            len(arrays["v_template"]))


def gau_by_the_equations(gau: GatedAttentionUnit, x: torch.Tensor) -> torch.Tensor:
    """Eqs. 3-4 written token by token from the unit's weights."""
    xn = torch.nn.functional.layer_norm(x, (gau.channels,), gau.norm.weight, gau.norm.bias, gau.norm.eps)
    e, s = gau.hidden, gau.qk_dim
    w, b = gau.uvz.weight, gau.uvz.bias
    silu = torch.nn.functional.silu
    u = silu(xn @ w[:e].T + b[:e])
    v = silu(xn @ w[e : 2 * e].T + b[e : 2 * e])
    z = silu(xn @ w[2 * e :].T + b[2 * e :])
    out = torch.zeros_like(x)
    for batch in range(x.shape[0]):
        for i in range(x.shape[1]):
            mixed = torch.zeros(e, dtype=x.dtype)
            for j in range(x.shape[1]):
                q = gau.gamma[0] * z[batch, i] + gau.beta[0]
                k = gau.gamma[1] * z[batch, j] + gau.beta[1]
                score = torch.clamp(q @ k / math.sqrt(s) + gau.bias[i, j], min=0) ** 2
                mixed = mixed + score * v[batch, j]
            out[batch, i] = x[batch, i] + gau.out(u[batch, i] * mixed)
    return out


def test_gau_follows_eqs_3_and_4():
    torch.manual_seed(0)
    gau = GatedAttentionUnit(6, 4, expansion=1.5, qk_dim=5).double()
    with torch.no_grad():
        for p in (gau.gamma, gau.beta, gau.bias):
            p.normal_()
    x = torch.randn(2, 4, 6, dtype=torch.float64)
    torch.testing.assert_close(gau(x), gau_by_the_equations(gau, x))
    assert gau.attend(x)[1].shape == (2, 4, 4) and bool((gau.attend(x)[1] >= 0).all())
    assert torch.autograd.gradcheck(gau, (x.clone().requires_grad_(),))


def test_gau_is_permutation_equivariant_without_bias_and_macs():
    torch.manual_seed(0)
    gau = GatedAttentionUnit(8, 5, qk_dim=4)
    x = torch.randn(1, 5, 8)
    order = torch.tensor([3, 0, 4, 1, 2])
    torch.testing.assert_close(gau(x[:, order]), gau(x)[:, order])
    n, c, e, s = 5, 8, 16, 4
    assert measure(gau, x).macs == n * c * (2 * e + s) + n * n * (s + e) + n * e * c
    with pytest.raises(ValueError, match=r"\(B, 5, 8\)"):
        gau(torch.randn(1, 6, 8))


def test_self_attention_block_is_residual_torch_attention_and_its_cost():
    # The GAU's ablation, x + MHA(LN(x)), against torch's MultiheadAttention with the same weights.
    torch.manual_seed(0)
    block = SelfAttentionBlock(8, 5, heads=2).double()
    attention = block.attention
    mha = nn.MultiheadAttention(8, 2, batch_first=True).double()
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([attention.q.weight, attention.k.weight, attention.v.weight]))
        mha.in_proj_bias.copy_(torch.cat([attention.q.bias, attention.k.bias, attention.v.bias]))
        mha.out_proj.load_state_dict(attention.out.state_dict())
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    normed = nn.functional.layer_norm(x, (8,), block.norm1.weight, block.norm1.bias)
    expected = x + mha(normed, normed, normed, need_weights=False)[0]
    torch.testing.assert_close(block(x), expected, rtol=0, atol=1e-12)
    n, c = 5, 8
    cost = measure(SelfAttentionBlock(c, n, heads=2), torch.zeros(1, n, c))
    assert cost.params == 4 * c * c + 6 * c
    assert cost.macs == 4 * n * c * c + 2 * n * n * c
    with pytest.raises(ValueError, match=r"\(B, 5, 8\); got \(3, 6, 8\)"):
        block(torch.randn(3, 6, 8))


@pytest.mark.parametrize("attention", ["gau", "standard", "none"])
@pytest.mark.parametrize("head", ["simcc", "regression"])
def test_keypoint_estimator_shapes(attention, head):
    torch.manual_seed(0)
    kem = KeypointEstimator(12, (2, 3), num_keypoints=7, channels=16, num_bins=10, attention=attention, head=head)
    out = kem(torch.randn(2, 12, 2, 3))
    assert out["coords"].shape == out["sigma"].shape == (2, 7, 3)
    assert out["keypoint_features"].shape == (2, 7, 16) and out["image_features"].shape == (2, 16)
    assert bool((out["sigma"] > 0).all())
    if head == "simcc":
        assert out["logits"].shape == (2, 7, 3, 10) and bool((out["coords"].abs() <= 0.5).all())
    with pytest.raises(ValueError, match=r"\(B, 12, 2, 3\)"):
        kem(torch.randn(2, 12, 3, 3))


def test_heatmap_decode_peak_and_uniform():
    h, w = 4, 5
    peak = torch.full((1, 1, h, w), -1e4)
    peak[0, 0, 1, 3] = 0.0
    coords, sigma = heatmap_decode(peak)
    torch.testing.assert_close(coords[0, 0], torch.tensor([(3 + 0.5) / w - 0.5, (1 + 0.5) / h - 0.5]))
    assert float(sigma.max()) < 1e-3
    coords, sigma = heatmap_decode(torch.zeros(1, 2, h, w))
    torch.testing.assert_close(coords, torch.zeros(1, 2, 2), atol=1e-7, rtol=0)
    # a discrete uniform over n equally spaced centres 1/n apart has variance (n^2 - 1) / (12 n^2)
    expected = torch.tensor([math.sqrt((w * w - 1) / 12) / w, math.sqrt((h * h - 1) / 12) / h])
    torch.testing.assert_close(sigma[0, 0], expected)


def test_deconv_decoder_and_pretrain_shapes():
    decoder = DeconvDecoder(8, num_keypoints=3, channels=(4, 4))
    assert decoder(torch.randn(2, 8, 2, 3)).shape == (2, 3, 8, 12)
    model = Pretrain2D(MGFENet(image_size=(32, 32)), num_keypoints=17, channels=(8,))
    out = model(torch.rand(2, 3, 32, 32))
    assert out["heatmaps"].shape == (2, 17, 2, 2) and out["coords"].shape == (2, 17, 2)
    keypoints = torch.zeros(2, 17, 2)
    assert float(pretrain_loss(out, keypoints, torch.zeros(2, 17), model.flow).detach()) == 0.0
    loss = pretrain_loss(out, keypoints, torch.ones(2, 17), model.flow)
    torch.testing.assert_close(loss, rle_loss(out["coords"], out["sigma"], keypoints, model.flow))


def _ground_truth(template, model, batch=2):
    torch.manual_seed(1)
    pose = 0.4 * torch.randn(1, 24, 3)
    pose[:, LEAVES] = 0  # IK returns the identity there
    pose = pose.expand(batch, -1, -1).reshape(batch, 72)
    betas = torch.randn(1, 10).expand(batch, -1)
    return mesh_targets(model.body, template, pose, betas)


def test_network_reproduces_ground_truth_mesh_through_ik(arrays, template):
    """With its heads set to output the true keypoints, twist and shape, the network's IK and body
    model must give back the true pose and mesh: every step of Fig. 2 wired right."""
    torch.manual_seed(0)
    model = KeypointHMR(num_keypoints=template.num_keypoints, image_size=(32, 32), channels=16, head="regression",
                        body_arrays=arrays)
    target = _ground_truth(template, model)
    # the 3DKEM "predicts" the true keypoints (in box units); the twist and shape heads their constants
    model.kem.register_forward_hook(lambda module, inputs, out: {**out, "coords": target["keypoints"] / model.box_size})
    with torch.no_grad():
        model.twist_head.weight.zero_()
        model.twist_head.bias.copy_(target["twist"][0].flatten())
        model.shape_mlp[-1].weight.zero_()
        model.shape_mlp[-1].bias.copy_(target["betas"][0])
        out = model(torch.rand(2, 3, 32, 32))
    torch.testing.assert_close(out["betas"], target["betas"])
    torch.testing.assert_close(out["joints"], target["joints"], atol=2e-5, rtol=0)
    torch.testing.assert_close(out["rotmats"], target["rotmats"], atol=1e-4, rtol=0)
    torch.testing.assert_close(out["vertices"], target["vertices"], atol=1e-4, rtol=0)
    losses = keypoint_hmr_loss(out, target, model.flow, model.body.parents)
    assert float(losses["theta"]) < 1e-8 and float(losses["beta"]) < 1e-10 and float(losses["twist"]) < 1e-3


def test_mesh_targets(arrays, template):
    model = KeypointHMR(num_keypoints=template.num_keypoints, image_size=(32, 32), channels=16, body_arrays=arrays)
    target = _ground_truth(template, model)
    torch.testing.assert_close(target["keypoints"][:, :24], target["joints"])
    torch.testing.assert_close(target["keypoints"][:, 24:], target["vertices"][:, [0, 500, 4000]])
    assert float(target["joints"][:, 0].abs().max()) == 0.0
    torch.testing.assert_close(target["twist"].norm(dim=-1), torch.ones(2, 23))


def test_smpl_parameter_losses_by_hand():
    parents = SMPL_24.parents
    eye = torch.eye(3).expand(1, 24, 3, 3)
    target = {"rotmats": eye, "betas": torch.zeros(1, 10), "twist": torch.tensor([0.0, 1.0]).expand(1, 23, 2)}
    rotmats = eye.clone()
    rotmats[:, LEAVES] = -eye[:, LEAVES]  # joints IK cannot determine do not count
    rotmats[:, 0, 0, 0] = 3.0  # one entry of 9 x 19 determined joints off by 2
    betas = torch.full((1, 10), 0.5)
    twist = torch.tensor([2.0, 0.0]).expand(1, 23, 2)  # normalised to (1, 0): distance sqrt(2) to (0, 1)
    losses = smpl_parameter_losses(rotmats, betas, twist, target, parents)
    torch.testing.assert_close(losses["theta"], torch.tensor(4.0 / (9 * 19)))
    torch.testing.assert_close(losses["beta"], torch.tensor(0.25))
    torch.testing.assert_close(losses["twist"], torch.tensor(math.sqrt(2.0)))


def test_keypoint_hmr_loss_weights():
    torch.manual_seed(0)
    out = {
        "coords": 0.1 * torch.randn(2, 26, 3), "sigma": torch.full((2, 26, 3), 0.1), "betas": torch.randn(2, 10),
        "twist": torch.randn(2, 23, 2), "rotmats": torch.randn(2, 24, 3, 3),
    }
    target = {"keypoints": torch.randn(2, 26, 3), "betas": torch.zeros(2, 10), "rotmats": torch.zeros(2, 24, 3, 3),
              "twist": torch.tensor([1.0, 0.0]).expand(2, 23, 2)}
    flow = RealNVP(3)
    terms = keypoint_hmr_loss(out, target, flow, SMPL_24.parents, box_size=2.0)
    torch.testing.assert_close(terms["keypoints"], rle_loss(out["coords"], out["sigma"], target["keypoints"] / 2, flow))
    expected = sum(e * terms[n] for e, n in zip(EPSILON, ("keypoints", "theta", "beta", "twist")))
    torch.testing.assert_close(terms["loss"], expected)
    assert EPSILON == (1.0, 0.01, 0.1, 0.01)
    with pytest.raises(ValueError, match="four weights"):
        keypoint_hmr_loss(out, target, flow, SMPL_24.parents, epsilon=(1.0, 1.0))


def test_model_checks_inputs(arrays):
    with pytest.raises(ValueError, match="joint_indices"):
        KeypointHMR(num_keypoints=20, image_size=(32, 32), channels=16, body_arrays=arrays)
    model = KeypointHMR(num_keypoints=26, image_size=(32, 32), channels=16, body_arrays=arrays)
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\)"):
        model(torch.rand(1, 3, 64, 64))


def test_coco_crops_on_the_synthetic_set():
    crops = CocoCrops(load_coco_keypoints(SYNTH / "annotations" / "person_keypoints_synth.json"), SYNTH,
                      crop_size=(32, 24))
    item = crops[0]
    assert item["image"].shape == (3, 32, 24) and item["keypoints"].shape == (17, 2)
    visible = item["visible"].bool()
    assert bool(visible.any()) and bool((item["keypoints"][visible].abs() <= 0.5).all())
    with pytest.raises(FileNotFoundError, match="image_root"):
        CocoCrops(load_coco_keypoints(SYNTH / "annotations" / "person_keypoints_synth.json"), SYNTH / "imageFiles")


def test_pretraining_runs_on_coco_crops():
    crops = CocoCrops(load_coco_keypoints(SYNTH / "annotations" / "person_keypoints_synth.json"), SYNTH,
                      crop_size=(32, 32))
    model = Pretrain2D(MGFENet(image_size=(32, 32)), channels=(8, 8))
    history = pretrain_2d(model, crops, epochs=1, batch_size=16, lr=1e-3)
    assert len(history) == 1 and all(math.isfinite(row["train_loss"]) for row in history)


def test_training_lowers_the_loss_on_one_batch(arrays, template):
    torch.manual_seed(0)
    model = KeypointHMR(num_keypoints=template.num_keypoints, image_size=(32, 32), channels=16, num_bins=32,
                        body_arrays=arrays)
    target = _ground_truth(template, model, batch=2)
    sample = {"image": torch.rand(3, 32, 32), "pose": torch.zeros(72), "betas": torch.zeros(10)}
    samples = [{**sample, "pose": pose, "betas": betas} for pose, betas in
               zip(matrix_to_axis_angle(target["rotmats"]).flatten(1), target["betas"])]
    history = train_keypoint_hmr(model, samples, template, epochs=6, batch_size=2, lr=3e-3)
    losses = [row["train_loss"] for row in history]
    assert len(history) == 6 and all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0]
    with pytest.raises(ValueError, match="keypoints"):
        train_keypoint_hmr(KeypointHMR(num_keypoints=30, image_size=(32, 32), channels=16, body_arrays=arrays),
                           samples, template, epochs=1)



@pytest.mark.parametrize("kind", ["paper91", "code96", "joints24"])
def test_mesh_targets_without_the_mesh_are_the_same(arrays, kind):
    """Training asks for targets without the 13,718-vertex mesh (`vertices=False`): the same keypoints."""
    template = keypoint_template(kind, arrays) if kind != "paper91" else keypoint_template(kind)
    body = BodyModel(arrays)
    generator = torch.Generator().manual_seed(2)
    pose, betas = 0.4 * torch.randn(3, 72, generator=generator), torch.randn(3, 10, generator=generator)
    full, light = mesh_targets(body, template, pose, betas), mesh_targets(body, template, pose, betas, vertices=False)
    assert "vertices" not in light and light["keypoints"].shape == (3, template.num_keypoints, 3)
    for name in light:
        torch.testing.assert_close(light[name], full[name], atol=1e-6, rtol=0)


def test_forward_without_the_mesh_gives_the_same_joints(arrays):
    torch.manual_seed(0)
    model = KeypointHMR(image_size=(32, 32), channels=16, num_bins=16, body_arrays=arrays).eval()
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        full, light = model(images), model(images, mesh=False)
    assert light["vertices"] is None and full["vertices"].shape == (2, 13718, 3)
    torch.testing.assert_close(light["joints"], full["joints"], atol=1e-6, rtol=0)
