"""hmrlab.models.mixste and .rtpca: MixSTE == RTPCA without TPCA and XLR, XLR's key counts, complexity by
closed form, losses by hand, flip TTA and long sequences (attention: tests/nn/test_attention.py; TPCA:
tests/nn/test_pyramid.py)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hmrlab.body.skeletons import H36M_17
from hmrlab.complexity import measure
from hmrlab.data.datasets import LiftingWindows
from hmrlab.metrics import mpjpe, mpjve
from hmrlab.models.mixste import (
    H36M_JOINT_WEIGHTS,
    MixSTE,
    flip_test,
    lift_sequence,
    lifting_loss,
    temporal_consistency,
    weighted_mpjpe,
)
from hmrlab.models.rtpca import RTPCA
from hmrlab.nn.pyramid import pyramid_lengths

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"dim": 16, "depth": 2, "heads": 2, "frames": 27}


def small(cls=RTPCA, **kwargs):
    torch.manual_seed(0)
    return cls(**{**SMALL, **kwargs})


# --- models ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [MixSTE, RTPCA])
def test_shapes_and_shorter_clips(cls):
    model = small(cls)
    for frames in (27, 8):
        assert model(torch.randn(2, frames, 17, 2)).shape == (2, frames, 17, 3)
    with pytest.raises(ValueError, match="positional embeddings for 1..27"):
        model(torch.randn(1, 28, 17, 2))
    with pytest.raises(ValueError, match="x must have shape \\(B, T, 17, 2\\); got \\(1, 9, 16, 2\\)"):
        model(torch.randn(1, 9, 16, 2))


def test_rtpca_rejects_clips_too_short_for_its_pyramid():
    with pytest.raises(ValueError, match="T >= ratio\\*\\*depth = 8"):
        small()(torch.randn(1, 7, 17, 2))
    with pytest.raises(ValueError, match="T >= ratio\\*\\*depth = 64"):
        small(frames=27, ratio=4)


def test_rtpca_without_tpca_and_xlr_is_mixste():
    mixste = small(MixSTE).eval()
    ablated = small(RTPCA, tpca=False, xlr=False).eval()
    ablated.load_state_dict(mixste.state_dict())  # strict: the very same parameters
    x = torch.randn(2, 27, 17, 2)
    torch.testing.assert_close(ablated(x), mixste(x))


def _attention_weights(model: MixSTE, x: torch.Tensor) -> list[torch.Tensor]:
    poses, attended = model.forward_with_attention(x)
    torch.testing.assert_close(poses, model(x), rtol=0, atol=0)
    return [a.weights for a in attended]


@pytest.mark.parametrize("frames,ratio", [(27, 2), (16, 2)])
def test_xlr_appends_the_previous_blocks_pooled_keys(frames, ratio):
    model = small(depth=3, ratio=ratio).eval()
    weights = _attention_weights(model, torch.randn(1, frames, 17, 2))
    coarse = pyramid_lengths(frames, 3, ratio)[-1]
    assert [w.shape[-1] for w in weights] == [frames, frames + coarse, frames + coarse]
    without_xlr = _attention_weights(small(depth=3, xlr=False), torch.randn(1, frames, 17, 2))
    assert [w.shape[-1] for w in without_xlr] == [frames] * 3


def test_without_positional_embeddings_joints_and_frames_are_exchangeable():
    # Attention is permutation-equivariant, so only the learned embeddings tell joints and frames apart.
    model = small(MixSTE).eval()
    with torch.no_grad():
        model.spatial_position.zero_()
        model.temporal_position.zero_()
    x = torch.randn(1, 9, 17, 2)
    joints, frames = torch.randperm(17), torch.randperm(9)
    torch.testing.assert_close(model(x[:, :, joints]), model(x)[:, :, joints])
    torch.testing.assert_close(model(x[:, frames]), model(x)[:, frames])


def _hand_params(c, depth, heads, mlp_ratio, j, f, pyramid_depth=0, ratio=2, i=2, o=3):
    m = int(c * mlp_ratio)
    block = 4 * c + (3 * c * c + 3 * c) + (c * c + c) + (c * m + m + m * c + c)
    pyramids = 2 * pyramid_depth * (c * ratio + c)
    return (i * c + c) + j * c + f * c + depth * (2 * block + pyramids) + 4 * c + (2 * c + c * o + o)


def _hand_flops(c, depth, mlp_ratio, b, t, j, pyramid_depth=0, ratio=2, xlr=False, i=2, o=3):
    # 2 FLOPs per multiply-add; attention: Q K^T and A V, each 2 L Lk C over all heads.
    tokens = b * t * j
    linear = 2 * tokens * (4 * c * c + 2 * int(c * mlp_ratio) * c)
    spatial = linear + 4 * b * t * j * j * c
    lengths = pyramid_lengths(t, pyramid_depth, ratio) if pyramid_depth else [t]
    coarse = lengths[-1] if xlr else 0
    pyramid = 2 * 2 * b * j * c * ratio * sum(lengths[1:])  # keys and values, each level upsampled once
    temporal = [linear + pyramid + 4 * b * j * t * (t + (coarse if k else 0)) * c for k in range(depth)]
    return 2 * tokens * (i * c + c * o) + depth * spatial + sum(temporal)


@pytest.mark.parametrize("kwargs", [{}, {"pyramid_depth": 3}, {"pyramid_depth": 3, "xlr": True},
                                    {"pyramid_depth": 2, "ratio": 3, "xlr": True}])
def test_complexity_matches_the_closed_form(kwargs):
    c, depth, heads, mlp_ratio, t = 16, 3, 2, 2.0, 27
    if kwargs:
        model = RTPCA(dim=c, depth=depth, heads=heads, frames=t, tpca=True, xlr=kwargs.get("xlr", False),
                      pyramid_depth=kwargs["pyramid_depth"], ratio=kwargs.get("ratio", 2))
    else:
        model = MixSTE(dim=c, depth=depth, heads=heads, frames=t)
    measured = measure(model, torch.zeros(2, t, 17, 2))
    pyramid_depth, ratio = kwargs.get("pyramid_depth", 0), kwargs.get("ratio", 2)
    assert measured.params == _hand_params(c, depth, heads, mlp_ratio, 17, t, pyramid_depth, ratio)
    assert measured.flops == _hand_flops(c, depth, mlp_ratio, 2, t, 17, pyramid_depth, ratio, kwargs.get("xlr", False))


def test_a_few_steps_fit_one_batch():
    model = small(depth=1)
    x = torch.randn(4, 1, 17, 2) + 0.1 * torch.randn(4, 16, 17, 2)
    y = 0.5 * F.pad(x, (0, 1))  # a target the model can express: learning must find it
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss = lifting_loss(model(x), y)["loss"]
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.7 * first


# --- losses --------------------------------------------------------------------------------------------


def test_weighted_mpjpe_by_hand_and_against_metrics():
    target = torch.randn(2, 5, 17, 3)
    pred = target.clone()
    pred[..., 13, 2] += 0.2  # left wrist, weight 4, off by 0.2 in every pose
    assert weighted_mpjpe(pred, target).item() == pytest.approx(4 * 0.2 / 17)
    noisy = target + torch.randn_like(target)
    torch.testing.assert_close(weighted_mpjpe(noisy, target, torch.ones(17)), mpjpe(noisy, target))
    with pytest.raises(ValueError, match="shape \\(J,\\) = \\(17,\\)"):
        weighted_mpjpe(noisy, target, torch.ones(16))


def test_temporal_consistency_of_uniform_motion():
    # x_t = t v for one joint: every step is v, so the loss is w_j |v|^2 / (3 J) averaged over xyz.
    pose = torch.zeros(1, 6, 17, 3)
    v = torch.tensor([0.01, 0.02, -0.02])
    pose[0, :, 12] = torch.arange(6.0)[:, None] * v
    expected = H36M_JOINT_WEIGHTS[12] * v.square().sum().item() / (3 * 17)
    assert temporal_consistency(pose).item() == pytest.approx(expected)
    assert temporal_consistency(pose[:, :1].expand(1, 6, 17, 3)).item() == 0.0
    with pytest.raises(ValueError, match="T >= 2"):
        temporal_consistency(pose[:, :1])


def test_lifting_loss_is_the_weighted_sum():
    pred, target = torch.randn(2, 6, 17, 3), torch.randn(2, 6, 17, 3)
    parts = lifting_loss(pred, target, consistency_weight=0.3, velocity_weight=1.5)
    torch.testing.assert_close(parts["mpjve"], mpjve(pred, target))
    torch.testing.assert_close(parts["loss"], parts["wmpjpe"] + 0.3 * parts["tc"] + 1.5 * parts["mpjve"])


# --- flip TTA and long sequences ----------------------------------------------------------------------


class _Pad(nn.Module):
    """A mirror-symmetric lifter: (x, y) -> (x, y, 0) per joint; ``frames`` as a clip model has."""

    frames = 9

    def forward(self, x):
        return F.pad(x, (0, 1))


def test_flip_test_uses_the_datasets_mirror():
    model = small(MixSTE).eval()
    x = torch.randn(2, 9, 17, 2)
    mirror = LiftingWindows([(np.zeros((1, 17, 2)), np.zeros((1, 17, 3)))], 1).mirror
    torch.testing.assert_close(flip_test(model, x), (model(x) + mirror(model(mirror(x)))) / 2)
    torch.testing.assert_close(flip_test(_Pad(), x), _Pad()(x))  # a symmetric model is unchanged
    with pytest.raises(ValueError, match="flip_permutation must be 17 integer joint indices"):
        flip_test(model, x, flip_permutation=list(range(16)))
    assert sorted(H36M_17.flip_permutation.tolist()) == list(range(17))


def test_lift_sequence_covers_every_frame_once():
    poses = torch.randn(23, 17, 2)  # clips at 0, 9 and a last one at 14 overlapping the second
    torch.testing.assert_close(lift_sequence(_Pad(), poses), F.pad(poses, (0, 1)))

    class Clock(_Pad):  # each output frame says where it was in its clip
        def forward(self, x):
            return torch.arange(x.shape[1], dtype=x.dtype)[:, None, None].expand(*x.shape[:-1], 3)

    position = lift_sequence(Clock(), poses)[:, 0, 0]
    assert position.tolist() == list(range(9)) + list(range(5)) + list(range(9))
    assert lift_sequence(Clock(), poses[:5]).shape == (5, 17, 3)


def test_lift_sequence_with_flip_is_flip_test_per_clip():
    model = small(MixSTE, frames=9).eval()
    poses = torch.randn(18, 17, 2)
    expected = torch.cat([flip_test(model, poses[None, :9])[0], flip_test(model, poses[None, 9:])[0]])
    torch.testing.assert_close(lift_sequence(model, poses, flip=True), expected)
