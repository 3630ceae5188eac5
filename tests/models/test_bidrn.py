"""hmrlab.models.bidrn: heatmap and crop geometry by closed forms, head sizes by formula, the whole model's
outputs, the binary model and its full-precision twin, and a short training run whose loss falls."""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, default_collate

from hmrlab.complexity import count_params, measure
from hmrlab.data.synth_wholebody import make_wholebody_samples
from hmrlab.geometry import axis_angle_to_matrix
from hmrlab.models.bidrn import (
    BiDRN,
    BoxNet,
    PositionNet,
    RotationNet,
    _mirror_pose,
    bidrn_loss,
    camera_translation,
    crop_boxes,
    crop_to_image,
    image_to_crop,
    sample_joint_features,
    soft_argmax_3d,
)
from hmrlab.nn.binary import is_binary_layer
from hmrlab.training.loop import fit

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(width=8, body_shape=(64, 48), hand_shape=(32, 32), face_shape=(32, 32))


@pytest.fixture(scope="module")
def samples():
    return make_wholebody_samples(2, image_size=(64, 48), seed=3)


@pytest.fixture(scope="module")
def batch(samples):
    return default_collate([samples[i] for i in range(len(samples))])


def tiny(binary=True):
    torch.manual_seed(0)
    return BiDRN(binary, **TINY)


@pytest.fixture(scope="module")
def eval_model():
    """One untrained binary model in eval mode, shared by the tests that only run it."""
    return tiny().eval()


def test_soft_argmax_of_a_peak_and_of_a_flat_map():
    heatmaps = torch.zeros(1, 2, 4, 5, 6)
    heatmaps[0, 0, 3, 1, 5] = 100.0  # depth 3, row 1, column 5
    positions = soft_argmax_3d(heatmaps)
    torch.testing.assert_close(positions[0, 0], torch.tensor([5.0, 1.0, 3.0]))
    torch.testing.assert_close(positions[0, 1], torch.tensor([2.5, 2.0, 1.5]))  # the centre


def test_sample_joint_features_at_pixels_and_between():
    features = torch.arange(24.0).view(1, 2, 3, 4)
    points = torch.tensor([[[3.0, 2.0], [0.5, 1.0]]])  # (x, y)
    sampled = sample_joint_features(features, points)
    assert sampled.shape == (1, 2, 2)
    torch.testing.assert_close(sampled[0, 0], features[0, :, 2, 3])
    torch.testing.assert_close(sampled[0, 1], (features[0, :, 1, 0] + features[0, :, 1, 1]) / 2)


def test_crops_read_the_image_where_crop_to_image_says():
    # On the image f(x, y) = x (a horizontal ramp) a bilinear crop pixel reads its own x coordinate.
    height, width = 40, 50
    ramp = torch.arange(width, dtype=torch.float64).expand(1, 3, height, width)
    boxes = torch.tensor([[10.3, 5.2, 30.7, 25.6]], dtype=torch.float64)
    crop = crop_boxes(ramp, boxes, (8, 8))
    u, v = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="xy")
    image_xy = crop_to_image(torch.stack([u, v], -1).reshape(1, -1, 2).double(), boxes, (8, 8))
    torch.testing.assert_close(crop[0, 0].reshape(-1), image_xy[0, :, 0])
    torch.testing.assert_close(image_to_crop(image_xy, boxes, (8, 8)), torch.stack([u, v], -1).reshape(1, -1, 2).double())


def test_camera_translation_closed_form():
    focal, center = torch.tensor([[200.0, 200.0]]), torch.tensor([[50.0, 60.0]])
    box = torch.tensor([[30.0, 40.0, 70.0, 80.0]])  # 40 x 40, centred on the principal point
    t = camera_translation(torch.zeros(1, 3), box, focal, center)
    torch.testing.assert_close(t, torch.tensor([[0.0, 0.0, 200.0 * 2.5 / 40.0 / 2]]))
    shifted = camera_translation(torch.tensor([[0.1, -0.2, 0.0]]), box + 20.0, focal, center)
    depth = 200.0 * 2.5 / 40.0 / 2
    torch.testing.assert_close(shifted, torch.tensor([[20 / 200 * depth + 0.1, 20 / 200 * depth - 0.2, depth]]))


def test_mirrored_pose_is_the_reflected_rotation():
    pose = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    reflect = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))
    torch.testing.assert_close(axis_angle_to_matrix(_mirror_pose(pose)), reflect @ axis_angle_to_matrix(pose) @ reflect)


def test_head_sizes_by_formula():
    c, j, d, hidden = 32, 5, 4, 16
    assert count_params(PositionNet(c, j, d)) == c * j * d + j * d
    assert count_params(RotationNet(c, j, 3, hidden)) == c * hidden + 2 * hidden + j * (hidden + 3) * 18 + 18
    deconv = (c + j * d) * hidden * 16 + 2 * hidden + 2 * (hidden * hidden * 16 + 2 * hidden)
    assert count_params(BoxNet(c, j, d, hidden)) == deconv + hidden * 3 + 3 + 3 * (hidden * hidden + hidden + hidden * 2 + 2)
    # A 1x1 convolution's MACs: C * J * D per map pixel.
    assert measure(PositionNet(c, j, d), torch.zeros(1, c, 3, 2)).macs == c * j * d * 6


def test_forward_shapes_and_outputs(batch, eval_model):
    with torch.no_grad():
        out = eval_model(batch["images"])
    shapes = {
        "global_orient": (3,), "body_pose": (21, 3), "left_hand_pose": (15, 3), "right_hand_pose": (15, 3),
        "jaw_pose": (3,), "betas": (10,), "expression": (10,), "transl": (3,), "rotations": (53, 3, 3),
        "vertices": (13718, 3), "joints": (127, 3), "joints_2d": (127, 2), "part_boxes": (3, 4),
        "body_positions": (22, 2), "hand_positions": (2, 21, 2),
    }
    assert {name: tuple(out[name].shape[1:]) for name in shapes} == shapes
    rotations = out["rotations"]
    torch.testing.assert_close(rotations @ rotations.transpose(-1, -2), torch.eye(3).expand_as(rotations), atol=1e-5, rtol=0)
    torch.testing.assert_close(axis_angle_to_matrix(out["body_pose"]), rotations[:, 1:22], atol=1e-5, rtol=0)
    assert (out["part_boxes"][..., 2:] > out["part_boxes"][..., :2]).all()


def test_hand_branch_is_mirror_equivariant(batch, eval_model):
    # Mirroring the image and swapping the hands' (mirrored) boxes feeds the shared hand network the
    # same two crops in the other order, so each hand's pose is the other's mirrored (and positions too).
    model = eval_model
    images, left, right = batch["images"], batch["boxes"][:, 1], batch["boxes"][:, 2]
    width = images.shape[-1]

    def mirror(boxes):
        return torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1)

    with torch.no_grad():
        pose, xy = model._hands(images, left, right)
        pose_m, xy_m = model._hands(images.flip(-1), mirror(right), mirror(left))
    for side in (0, 1):
        torch.testing.assert_close(
            axis_angle_to_matrix(pose_m[:, side]), axis_angle_to_matrix(_mirror_pose(pose[:, 1 - side])), atol=1e-4, rtol=0
        )
        torch.testing.assert_close(xy_m[:, side, :, 0], width - 1 - xy[:, 1 - side, :, 0], atol=1e-3, rtol=0)
        torch.testing.assert_close(xy_m[:, side, :, 1], xy[:, 1 - side, :, 1], atol=1e-3, rtol=0)


def test_binary_model_and_full_precision_twin():
    binary, real = tiny(True), tiny(False)
    assert any(is_binary_layer(m) for m in binary.modules())
    assert not any(is_binary_layer(m) for m in real.modules())
    assert not any(isinstance(getattr(m, "fc", None), nn.Linear) for m in (binary.body_backbone, real.hand_backbone))


def test_loss_backpropagates_to_every_branch(batch):
    model = tiny()
    terms = bidrn_loss(model, batch)
    assert set(terms) == {"loss", "rotation", "shape", "expression", "transl", "joints", "joints_2d", "positions", "boxes"}
    terms["loss"].backward()
    for branch in (model.body_backbone, model.hand_backbone, model.face_backbone, model.box_net):
        grads = [p.grad for p in branch.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        assert sum(g.abs().sum() for g in grads) > 0


def test_short_training_lowers_the_loss(samples):
    model = tiny()
    history = fit(model, bidrn_loss, DataLoader(samples, batch_size=2), epochs=6, lr=1e-3, grad_clip=1.0,
                  progress=False, device="cpu")
    losses = [row["train_loss"] for row in history]
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0], losses


def test_bad_inputs_raise(eval_model):
    with pytest.raises(ValueError, match=r"images must have shape \(B, 3, H, W\)"):
        eval_model(torch.zeros(1, 1, 64, 48))
    with pytest.raises(ValueError, match="backbones"):
        BiDRN(backbones={"body": nn.Identity()}, **TINY)


def test_packed_bidrn_equals_the_float_emulated_binary_model(batch, eval_model):
    from hmrlab.models.bidrn import pack_bidrn
    from hmrlab.nn.binary import BlockResidual

    packed = pack_bidrn(eval_model)
    blocks = {name: m for name, m in eval_model.named_modules() if isinstance(m, BlockResidual)}
    packed_blocks = dict(packed.named_modules())
    seen = {}

    def record(name):
        def hook(module, args, out):
            seen.setdefault(name, (args[0], out))  # the first call (the hand net runs once)
        return hook

    hooks = [m.register_forward_hook(record(name)) for name, m in blocks.items()]
    inputs = (batch["images"], batch["boxes"][:, 0], batch["boxes"][:, 1:])  # crops inside the images
    with torch.no_grad():
        expected, ours = eval_model(*inputs), packed(*inputs)
        for hook in hooks:
            hook.remove()
        # Every packed block equals its float-emulated twin on maps of the shapes the model gave it. (On
        # the model's own maps, crops that fall outside the image are all zeros, whose units then hit
        # exact ties, 0 at a threshold of 0, where the emulation's rounding, not the maths, picks a sign.)
        assert set(seen) == set(blocks)
        generator = torch.Generator().manual_seed(0)
        for name, (x, _) in seen.items():
            x = torch.randn(x.shape, generator=generator)
            out = blocks[name](x)
            scale = out.abs().max().item()
            torch.testing.assert_close(packed_blocks[name](x), out, rtol=1e-5, atol=1e-5 * scale, msg=name)
    # End to end the maps differ by float rounding, which can still flip the rare sign of a
    # pre-activation at a tie; an untrained model's heads amplify that (vertices ~1e7 m, and the
    # projected joints divide by a near-zero depth, so they are left out).
    for name, tol in (("rotations", 1e-4), ("expression", 1e-4), ("part_boxes", 1e-4), ("hand_positions", 1e-4),
                      ("betas", 1e-2), ("vertices", 1e-2)):
        scale = expected[name].abs().max().item()
        torch.testing.assert_close(ours[name], expected[name], rtol=tol, atol=tol * scale, msg=name)
    with pytest.raises(ValueError, match="binary BiDRN"):
        pack_bidrn(tiny(False))
