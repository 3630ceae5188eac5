"""hmrlab.data.synth_wholebody: shards that resume and grow; targets that agree with smplx and the camera;
placement and sampling ranges; each sample its own look; augmentation that keeps the targets; seeds kept
apart from the benchmark's; outfits read off the SMPL-X-format model."""

import json
import zlib

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from hmrlab.body import SMPLX_JOINT_NAMES, body_model_arrays, load_body_model
from hmrlab.body.wholebody import SMPLX_PARAM_NAMES, part_joint_indices
from hmrlab.data import synth_wholebody
from hmrlab.data.outfits import outfit_parts
from hmrlab.data.synth_wholebody import (
    PART_NAMES,
    AugmentedWholeBody,
    WholeBodyAugmentation,
    WholeBodySamples,
    generate_wholebody,
    joint_box,
    load_wholebody,
    make_wholebody_samples,
)
from hmrlab.io import read_npz

pytestmark = pytest.mark.usefixtures("one_thread")

COUNT, SIZE = 4, (64, 48)


@pytest.fixture(scope="module")
def samples() -> WholeBodySamples:
    return make_wholebody_samples(COUNT, image_size=SIZE, seed=2)


@pytest.fixture(scope="module")
def smplx_model():
    return load_body_model("smplx", num_betas=10, num_expression_coeffs=10, use_pca=False, flat_hand_mean=True,
                           batch_size=COUNT)


def test_shapes_and_ranges(samples):
    assert len(samples) == COUNT
    assert samples.images.shape == (COUNT, 3, *SIZE) and samples.images.dtype == torch.uint8
    expected = {
        "global_orient": (3,), "body_pose": (21, 3), "left_hand_pose": (15, 3), "right_hand_pose": (15, 3),
        "jaw_pose": (3,), "betas": (10,), "expression": (10,), "transl": (3,), "joints": (127, 3),
        "joints_2d": (127, 2), "boxes": (4, 4),
    }
    for name, shape in expected.items():
        assert getattr(samples, name).shape == (COUNT, *shape), name
        assert getattr(samples, name).dtype == torch.float32, name
    # every sample its own body, hands, face and picture
    for name in ("betas", "left_hand_pose", "expression"):
        assert len(torch.unique(getattr(samples, name).reshape(COUNT, -1)[:, 0])) == COUNT, name
    assert all(image.float().std() > 5 for image in samples.images)


def test_joints_project_through_the_pinhole(samples):
    # u = f x / z + c, v = f y / z + c with the camera at the origin (R = I, t = 0).
    joints = samples.joints.double()
    expected = joints[..., :2] / joints[..., 2:] * samples.focal.double() + samples.center.double()
    torch.testing.assert_close(samples.joints_2d.double(), expected, rtol=0, atol=1e-3)
    assert samples.focal.tolist() == pytest.approx([1.4 * SIZE[0]] * 2)
    assert samples.center.tolist() == pytest.approx([(SIZE[1] - 1) / 2, (SIZE[0] - 1) / 2])


def test_params_reproduce_the_joints_through_smplx(samples, smplx_model):
    params = {name: getattr(samples, name).reshape(COUNT, -1) for name in SMPLX_PARAM_NAMES}
    with torch.no_grad():
        joints = smplx_model(**params).joints
    torch.testing.assert_close(joints, samples.joints, rtol=0, atol=1e-5)


def test_placement_and_pose_ranges(samples, smplx_model):
    params = {name: getattr(samples, name).reshape(COUNT, -1) for name in SMPLX_PARAM_NAMES}
    with torch.no_grad():
        vertices = smplx_model(**params).vertices.double()
    pelvis = samples.joints[:, 0]
    assert ((pelvis[:, 2] >= 2.6) & (pelvis[:, 2] <= 4.2)).all()
    # every vertex inside the picture (these bodies fit in it), by the pinhole written out
    uv = vertices[..., :2] / vertices[..., 2:] * samples.focal.double() + samples.center.double()
    assert (uv >= 0).all() and (uv[..., 0] <= SIZE[1] - 1).all() and (uv[..., 1] <= SIZE[0] - 1).all()
    jaw = samples.jaw_pose
    assert (jaw[:, 0] >= 0).all() and (jaw[:, 0] <= 0.3).all() and (jaw[:, 1:] == 0).all()
    assert samples.betas.abs().max() <= 3
    # the camera is at most 30 degrees above the pelvis and rolls at most 8: the head is above it
    head = SMPLX_JOINT_NAMES.index("head")
    assert (samples.joints_2d[:, head, 1] < samples.joints_2d[:, 0, 1]).all()


def test_boxes_hold_their_joints(samples):
    parts = part_joint_indices()
    groups = {"body": list(range(127)), **parts}
    for index, name in enumerate(PART_NAMES):
        points, box = samples.joints_2d[:, groups[name]], samples.boxes[:, index]
        assert (points >= box[:, None, :2] - 1e-4).all() and (points <= box[:, None, 2:] + 1e-4).all(), name
        width, height = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
        aspect = 256 / 192 if name == "body" else 1.0
        torch.testing.assert_close(height / width, torch.full_like(width, aspect))


def test_joint_box_by_hand():
    points = torch.tensor([[0.0, 0.0], [4.0, 2.0]])
    assert joint_box(points, 1.0).tolist() == [0.0, -1.0, 4.0, 3.0]
    assert joint_box(points, 1.0, aspect=2.0).tolist() == [0.0, -3.0, 4.0, 5.0]
    assert joint_box(points, 1.5).tolist() == [-1.0, -2.0, 5.0, 4.0]


def test_items_batch_with_a_dataloader(samples):
    batch = next(iter(DataLoader(samples, batch_size=2)))
    assert batch["images"].shape == (2, 3, *SIZE) and batch["images"].dtype == torch.float32
    torch.testing.assert_close(batch["images"], samples.images[:2].float() / 255)
    assert batch["focal"].shape == (2, 2) and batch["boxes"].shape == (2, 4, 4)
    camera = samples.camera()
    assert camera.image_size == (SIZE[1], SIZE[0])
    np.testing.assert_allclose(camera.project(samples.joints[0].double().numpy()), samples.joints_2d[0].numpy(),
                               atol=1e-3)


def test_shards_resume_grow_and_equal_the_in_memory_set(samples, tmp_path):
    """Shard 0 is make_wholebody_samples' set; a deleted shard (an interrupted run) is rendered again,
    identical, and the others are kept; more samples keep the shards made."""
    folder = tmp_path / "set"
    generate_wholebody(folder, count=3, image_size=SIZE, seed=2, shard_size=2, workers=1, progress=False)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["config"]["count"] == 3 and len(manifest["shards"]) == 2
    loaded = load_wholebody(folder)
    first_two = make_wholebody_samples(2, image_size=SIZE, seed=2)
    for name in synth_wholebody.MEMBERS:
        assert torch.equal(getattr(loaded, name)[:2], getattr(first_two, name)), name
    assert not torch.equal(loaded.betas[2], samples.betas[2])  # shard 1 draws anew

    names = manifest["shards"]
    before = read_npz(folder / names[0])
    (folder / names[0]).unlink()
    (folder / "manifest.json").unlink()
    kept = (folder / names[1]).stat().st_mtime_ns
    generate_wholebody(folder, count=3, image_size=SIZE, seed=2, shard_size=2, workers=1, progress=False)
    again = read_npz(folder / names[0])
    assert all(np.array_equal(before[name], again[name]) for name in synth_wholebody.MEMBERS)
    assert (folder / names[1]).stat().st_mtime_ns == kept

    made = (folder / names[0]).stat().st_mtime_ns
    generate_wholebody(folder, count=4, image_size=SIZE, seed=2, shard_size=2, workers=1, progress=False)
    grown = json.loads((folder / "manifest.json").read_text())["shards"]
    assert grown[0] == names[0] and (folder / names[0]).stat().st_mtime_ns == made
    assert not (folder / names[1]).exists()  # a last, shorter shard belongs to its count only
    assert len(load_wholebody(folder)) == 4


def test_missing_set_names_the_generator(tmp_path):
    with pytest.raises(FileNotFoundError, match="generate_wholebody"):
        load_wholebody(tmp_path)


def test_augmentation_keeps_the_targets(samples):
    torch.manual_seed(0)
    augmented = AugmentedWholeBody(samples, WholeBodyAugmentation(color=0.3, shift=0.1, zoom=(0.9, 1.15)))
    original_boxes = samples.boxes.clone()
    for index in range(COUNT):
        item, plain = augmented[index], samples[index]
        for name in ("joints", "joints_2d", "global_orient", "transl", "expression", "focal"):
            assert torch.equal(item[name], plain[name]), name
        assert torch.equal(item["boxes"][1:], plain["boxes"][1:])  # part boxes: the true ones
        body, true_body = item["boxes"][0], plain["boxes"][0]
        size, true_size = body[2:] - body[:2], true_body[2:] - true_body[:2]
        scale = size / true_size
        assert 0.9 - 1e-5 <= scale[0] <= 1.15 + 1e-5 and scale[0] == pytest.approx(float(scale[1]))
        shift = ((body[:2] + body[2:]) - (true_body[:2] + true_body[2:])) / 2 / true_size
        assert (shift.abs() <= 0.1 + 1e-5).all()
        # a gain per channel: the ratio to the plain image is one number per channel where unclipped
        bright = (item["images"] < 1) & (plain["images"] > 0.05)
        ratios = [(item["images"][c] / plain["images"][c])[bright[c]] for c in range(3)]
        assert all(0.7 - 1e-4 <= r.min() and r.max() <= 1.3 + 1e-4 and r.std() < 1e-2 for r in ratios)
    assert torch.equal(samples.boxes, original_boxes)  # the set itself is untouched
    with pytest.raises(ValueError, match="invalid WholeBodyAugmentation"):
        WholeBodyAugmentation(color=1.5)


def test_seeds_kept_apart_from_the_benchmark():
    """Shard k draws from SeedSequence([seed, WHOLEBODY_KEY, k]), benchmark sequence k from
    SeedSequence([seed, crc32("3dpw-k")]): no benchmark key equals WHOLEBODY_KEY."""
    keys = {zlib.crc32(f"3dpw-{k}".encode()) for k in range(10**6)}
    assert synth_wholebody.WHOLEBODY_KEY not in keys
    assert synth_wholebody.DEFAULT_SEED != 0  # the benchmark set's seed
    first = np.random.SeedSequence([0, synth_wholebody.WHOLEBODY_KEY, 0]).generate_state(4)
    assert not np.array_equal(first, np.random.SeedSequence([0, zlib.crc32(b"3dpw-0")]).generate_state(4))


def test_outfits_read_the_smplx_format_model():
    """The SMPL-X-format model's 55 joints map onto SMPL's 24 parts: nearly every vertex gets the part
    the SMPL-format model (same mesh) gives it; fingers are hands, the jaw and eyes the head."""
    smpl, smplx = body_model_arrays("smpl"), body_model_arrays("smplx")
    ours, reference = outfit_parts(smplx), outfit_parts(smpl)
    assert (ours.labels == reference.labels).mean() > 0.99 and np.array_equal(ours.eyes, reference.eyes)
    raw = smplx["weights"].argmax(1)
    names = [str(n) for n in smplx["joint_names"]]
    assert (ours.labels[np.isin(raw, [names.index(n) for n in ("jaw", "left_eye_smplhf")])] == 15).all()
    assert (ours.labels[raw == names.index("left_index2")] == 22).all()
    assert (ours.labels[raw == names.index("right_thumb1")] == 23).all()
    with pytest.raises(ValueError, match="skinning weights"):
        outfit_parts({**smpl, "weights": smpl["weights"][:, :20]})


@pytest.mark.parametrize(
    "kwargs, match",
    [({"count": 0}, "count"), ({"count": 1, "image_size": (8, 8)}, "image_size"),
     ({"count": 1, "part_scale": 0.0}, "part_scale"), ({"count": 1, "motion_share": 2.0}, "motion_share")],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_wholebody_samples(**kwargs)
