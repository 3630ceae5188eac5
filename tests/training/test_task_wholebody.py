"""The wholebody task: BiDRN trained on rendered whole-body samples through `hmrlab.training`."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from hmrlab import evaluation, paths, training
from hmrlab.body import body_model_arrays
from hmrlab.body.wholebody import pose_wholebody
from hmrlab.data import smpl_targets
from hmrlab.data.datasets import MeshSamples
from hmrlab.evaluation import pw3d_split
from hmrlab.models.bidrn import BiDRN
from hmrlab.training.tasks import wholebody

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TABLE_COLUMNS = ["MPJPE", "PA-MPJPE", "MPVPE", "Accel", "frames"]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("wholebody_cache")


def tiny_config(out_dir, cache_dir, *overrides, name="wholebody_bidrn.yaml"):
    """The config's quick version, writing into temporary folders."""
    return training.load_config(CONFIGS / name, [f"out_dir={out_dir}", f"data.cache_dir={cache_dir}", *overrides],
                                  quick=True)


@pytest.fixture(scope="module")
def run(tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("wholebody_run")
    config = tiny_config(out, cache_dir)
    history = training.train(config)
    return out, config, history


@pytest.fixture(scope="module")
def model(run):
    """An untrained model of the quick configuration, in eval mode (built once: the body model loads slowly)."""
    torch.manual_seed(0)
    return training.build_model(run[1]).eval()


@pytest.mark.parametrize(("name", "binary"), [("wholebody_bidrn.yaml", True), ("wholebody_bidrn_fp.yaml", False)])
def test_configs_load_and_build(name, binary, tmp_path):
    full = training.load_config(CONFIGS / name)
    assert full.task == "wholebody" and full.data["train_count"] == 10_000
    config = tiny_config(tmp_path, tmp_path, name=name)
    model = training.build_model(config)
    assert isinstance(model, BiDRN) and model.binary == binary
    assert model.body_shape == tuple(config.model_args["body_shape"])
    assert config.data["image_size"] == [64, 48] and config.epochs == 1


def test_train_evaluate_and_benchmark(run):
    out, config, history = run
    assert len(history) == 1 and np.isfinite(history[0]["val_mpjpe"]) and np.isfinite(history[0]["train_loss"])
    table = training.evaluate(out)
    assert list(table.index) == ["All samples"]
    assert list(table.columns) == ["MPJPE", "PA-MPJPE", "MPVPE", "Hands PA-MPJPE", "samples"]
    assert np.isfinite(table.drop(columns="samples").to_numpy()).all() and table.loc["All samples", "samples"] == 4

    scored = training.benchmark(out, paths.SYNTH_3DPW)
    sequences = pw3d_split.load_split(paths.SYNTH_3DPW, "test")
    # Every frame of every test actor, counted from the files.
    expected = {f"{name}/{a}": len(actor.poses)
                for name, sequence in sequences.items() for a, actor in enumerate(sequence.actors)}
    assert list(scored.index) == [*expected, "Average", "All frames"]
    assert list(scored.columns) == TABLE_COLUMNS
    assert scored["frames"].iloc[:-2].to_dict() == expected
    assert np.isfinite(scored.drop(columns="frames").to_numpy()).all()


def test_example_inputs_run_through_the_model(run, model):
    _, config, _ = run
    inputs = wholebody.example_inputs(config)
    assert inputs[0].shape == (1, 3, 64, 48) and inputs[1].shape == (1, 4) and inputs[2] is None
    with torch.no_grad():
        out = model(*inputs)
    assert out["vertices"].shape == (1, 13718, 3) and torch.isfinite(out["vertices"]).all()


def test_examples_are_pelvis_relative_validation_samples(run, model):
    _, config, _ = run
    shown = wholebody.examples(model, config, 3)
    assert shown["images"].shape == (3, 3, 64, 48)
    assert shown["pred_vertices"].shape == shown["target_vertices"].shape == (3, 13718, 3)
    # Reference: the first validation samples (the cache round trip is tested below), their pelvis
    # from the generator's own joints.
    reference = wholebody.load_samples(config, "val")[:3]
    assert not torch.equal(reference["betas"], wholebody.load_samples(config, "train")[:3]["betas"])  # another seed
    torch.testing.assert_close(shown["images"], reference["images"])
    names = ("global_orient", "body_pose", "left_hand_pose", "right_hand_pose", "jaw_pose", "betas", "expression", "transl")
    params = {name: reference[name] for name in names}
    with torch.no_grad():
        vertices = pose_wholebody(model.body_model, params)[0]
    torch.testing.assert_close(shown["target_vertices"], vertices - reference["joints"][:, :1], atol=1e-5, rtol=0)
    torch.testing.assert_close(shown["root"], reference["joints"][:, 0], atol=1e-5, rtol=0)
    assert shown["camera"].shape == (3, 3, 3) and shown["pred_root"].shape == (3, 3)
    projected = shown["root"] @ shown["camera"][0].T  # the true pelvis falls inside the picture
    uv = projected[:, :2] / projected[:, 2:]
    assert ((uv >= 0) & (uv <= torch.tensor([48.0, 64.0]))).all()
    with pytest.raises(ValueError, match="count must be between 1 and the 4"):
        wholebody.examples(model, config, 5)


def test_target_meshes_reproduce_the_generators_joints(run, model):
    _, config, _ = run
    val = wholebody.load_samples(config, "val")
    batch = default_collate([val[i] for i in range(len(val))])
    with torch.no_grad():
        _, joints = wholebody.target_meshes(batch, model.body_model)
    torch.testing.assert_close(joints, val.joints, atol=1e-5, rtol=0)


def test_crop_camera_projects_the_datasets_joints():
    samples = MeshSamples(pw3d_split.load_split(paths.SYNTH_3DPW, "test"),
                          paths.SYNTH_3DPW / "imageFiles", crop_size=(64, 48))
    batch = default_collate([samples[i] for i in (0, 5)])
    focal, center = wholebody.crop_camera(batch["camera"])
    joints = batch["joints_3d"]
    projected = joints[..., :2] / joints[..., 2:] * focal[:, None] + center[:, None]
    torch.testing.assert_close(projected, batch["joints_2d"], atol=1e-3, rtol=0)


def test_benchmark_crop_keeps_the_body_aspect(tmp_path):
    config = tiny_config(tmp_path, tmp_path, "data.image_size=[128, 96]")
    assert wholebody.benchmark_crop_size(config) == (128, 96)


def test_loss_falls_on_a_fixed_batch(run, model):
    _, config, _ = run
    torch.manual_seed(0)
    model = copy.deepcopy(model).train()
    batch = default_collate([wholebody.load_samples(config, "train")[i] for i in range(2)])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        loss = wholebody.loss(model, batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3]), losses


def test_val_metric_is_the_body_joints_mpjpe(run, model):
    _, config, _ = run
    batch = default_collate([wholebody.load_samples(config, "val")[i] for i in range(2)])
    with torch.no_grad():
        out = model(batch["images"], batch["boxes"][:, 0], None, batch["focal"][0], batch["center"][0])
        value = wholebody.body_mpjpe(model, batch)
    pred = (out["joints"][:, :22] - out["joints"][:, :1]).numpy()
    target = (batch["joints"][:, :22] - batch["joints"][:, :1]).numpy()
    assert value == pytest.approx(1000 * np.linalg.norm(pred - target, axis=-1).mean(), rel=1e-5)


def test_bad_settings_raise(tmp_path):
    with pytest.raises(ValueError, match=r"unknown data keys \['frames'\].*known keys are \['train_count'"):
        wholebody.build_datasets(tiny_config(tmp_path, tmp_path, "data.frames=3"))
    with pytest.raises(ValueError, match=r"image_size must be \[height, width\]"):
        wholebody.example_inputs(tiny_config(tmp_path, tmp_path, "data.image_size=[64]"))
    with pytest.raises(ValueError, match="last batch of one sample"):
        wholebody.build_datasets(tiny_config(tmp_path, tmp_path, "data.train_count=9"))
    with pytest.raises(ValueError, match="split must be"):
        wholebody.load_samples(tiny_config(tmp_path, tmp_path), "test")


def test_lsp14_body_errors_match_the_3dpw_protocol():
    vertices = smpl_targets.smpl_meshes(torch.zeros(3, 72), torch.zeros(3, 10))
    noisy = vertices + 0.01 * torch.randn(vertices.shape, generator=torch.Generator().manual_seed(0))
    ours = wholebody.lsp14_body_errors(noisy, vertices)
    table = evaluation.pw3d_protocol({"s": noisy}, {"s": vertices}, body_model_arrays("smpl")["J_regressor_h36m"])
    for name in ("MPJPE", "PA-MPJPE", "MPVPE"):
        assert float(ours[name].mean()) == pytest.approx(table.loc["s", name], rel=1e-4), name
