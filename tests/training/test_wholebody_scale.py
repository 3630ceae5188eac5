"""The wholebody task at scale: sets rendered in shards per split, size and seed (seeds off the
benchmark's), the training set augmented, floors of the body, the hands and the face logged beside the
model's errors (checked against scipy's rotation mean and Kabsch alignment), one training step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from torch.utils.data import default_collate

from hmrlab import training
from hmrlab.body import load_body_model
from hmrlab.body.wholebody import SMPLX_PARAM_NAMES, part_joint_indices
from hmrlab.data.synth_wholebody import AugmentedWholeBody, WholeBodySamples
from hmrlab.training.tasks import wholebody

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FLOORS = ("floor_mpjpe", "floor_hand_pa_mpjpe", "floor_face_pa_mpjpe")
ERRORS = ("mpjpe", "hand_pa_mpjpe", "face_pa_mpjpe")


def tiny_config(folder: Path, *overrides: str) -> training.RunConfig:
    """The quick config with 4 training samples (one step of 4) and 3 validation samples (one batch)."""
    return training.load_config(CONFIGS / "wholebody_bidrn.yaml", [
        f"out_dir={folder / 'run'}", f"data.cache_dir={folder / 'cache'}", "progress=false", "data.train_count=4",
        "data.val_count=3", "data.image_size=[48,36]", *overrides], quick=True)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("wholebody_scale")


def test_defaults_and_configs_are_at_scale():
    assert wholebody.WholeBodyData().train_count == 10_000 and wholebody.WholeBodyData().augment
    assert wholebody.WholeBodyData().seed != 0  # the benchmark set's seed
    for name in ("wholebody_bidrn.yaml", "wholebody_bidrn_fp.yaml"):
        assert wholebody.settings(training.load_config(CONFIGS / name)).train_count == 10_000
        assert wholebody.settings(training.load_config(CONFIGS / name, quick=True)).train_count <= 16


def test_sets_are_cached_per_split_size_and_seed(folder):
    config = tiny_config(folder)
    train, val = (wholebody.load_samples(config, split) for split in ("train", "val"))
    assert (len(train), len(val)) == (4, 3) and train.images.shape[2:] == (48, 36)
    options = wholebody.settings(config)
    for split, seed in (("train", options.seed), ("val", options.seed + wholebody.VAL_SEED_OFFSET)):
        path = wholebody.set_folder(config, split)
        assert path == options.cache_dir / f"{split}_48x36_seed{seed}"
        assert json.loads((path / "manifest.json").read_text())["config"]["seed"] == seed
    assert not torch.equal(train.betas[0], val.betas[0])
    made = (wholebody.set_folder(config, "train") / "manifest.json").stat().st_mtime_ns
    again = wholebody.load_samples(config, "train")  # read, not rendered
    assert (wholebody.set_folder(config, "train") / "manifest.json").stat().st_mtime_ns == made
    assert torch.equal(again.images, train.images)


def test_training_set_is_augmented_and_carries_the_constant(folder):
    train, val = wholebody.build_datasets(tiny_config(folder))
    assert isinstance(train.dataset, AugmentedWholeBody) and isinstance(val.dataset, WholeBodySamples)
    assert train[0]["floor_joints"].shape == (127, 3)
    assert not torch.equal(train[0]["boxes"][0], train.dataset.samples.boxes[0, 0])  # a jittered body box
    plain, _ = wholebody.build_datasets(tiny_config(folder, "data.augment=false"))
    assert isinstance(plain.dataset, WholeBodySamples)


def _kabsch_error(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean distance (same unit) after the best similarity transform of pred (P, 3) onto target (P, 3)."""
    pred, target = pred - pred.mean(0), target - target.mean(0)
    rotation, _ = Rotation.align_vectors(target, pred)
    turned = rotation.apply(pred)
    scale = (turned * target).sum() / (pred * pred).sum()
    return float(np.linalg.norm(scale * turned - target, axis=-1).mean())


def test_floors_are_the_mean_hands_and_face(folder):
    """The constant: scipy's rotation mean of every training joint (hands and jaw too), the mean betas
    and expression, posed by smplx; each hand and the face Kabsch-aligned on its own."""
    config = tiny_config(folder)
    train, val = wholebody.build_datasets(config)
    samples = train.dataset.samples
    params = {}
    for name in SMPLX_PARAM_NAMES[:-1]:
        value = getattr(samples, name).double().numpy()
        if name in ("betas", "expression"):
            params[name] = value.mean(0, keepdims=True)
        else:
            joints = value.reshape(len(value), -1, 3)
            params[name] = np.stack([Rotation.from_rotvec(joints[:, j]).mean().as_rotvec()
                                     for j in range(joints.shape[1])]).reshape(1, -1)
    model = load_body_model("smplx", num_betas=10, num_expression_coeffs=10, use_pca=False, flat_hand_mean=True)
    with torch.no_grad():
        constant = model(**{name: torch.as_tensor(value, dtype=torch.float32) for name, value in params.items()},
                         transl=torch.zeros(1, 3)).joints[0].double().numpy()
    batch = default_collate([val[i] for i in range(len(val))])
    truth = batch["joints"].double().numpy()
    parts = part_joint_indices()
    hands = np.mean([[_kabsch_error(constant[parts[h]], sample[parts[h]]) for h in ("left_hand", "right_hand")]
                     for sample in truth])
    face = np.mean([_kabsch_error(constant[parts["face"]], sample[parts["face"]]) for sample in truth])
    assert wholebody.floor_hand_pa_mpjpe(None, batch) == pytest.approx(1000 * hands, abs=0.05)
    assert wholebody.floor_face_pa_mpjpe(None, batch) == pytest.approx(1000 * face, abs=0.05)
    body = constant[:22] - constant[:1]
    expected = 1000 * np.linalg.norm(body - (truth[:, :22] - truth[:, :1]), axis=-1).mean()
    assert wholebody.floor_mpjpe(None, batch) == pytest.approx(expected, abs=0.05)


def test_one_training_step_logs_each_error_beside_its_floor(folder):
    config = tiny_config(folder)
    history = training.train(config)
    row = history[-1]
    for name in (*ERRORS, *FLOORS):
        assert np.isfinite(row[f"val_{name}"]) and row[f"val_{name}"] > 0, name
    assert set(wholebody.TASK.metrics) == {*ERRORS, *FLOORS}
    # the floor table's hand column is the same constant's error on the same (one batch of) samples
    table = wholebody.floor(config)
    assert table.loc["All samples", "Hands PA-MPJPE"] == pytest.approx(row["val_floor_hand_pa_mpjpe"], rel=1e-4)
