"""SynthCrops: per-sample bodies, poses and cameras rendered into canvases; shards that resume and grow;
targets that agree with the body model, the camera and the picture; kept apart from the benchmark's seeds."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest
import torch

from hmrlab.data import synth_crops
from hmrlab.data.datasets import SynthCrops
from hmrlab.data.smpl_targets import posed_smpl
from hmrlab.io import read_npz

pytestmark = pytest.mark.usefixtures("one_thread")

CROP = (32, 32)


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crops") / "set"
    synth_crops.generate_crops(folder, count=6, crop_size=CROP, shard_size=3, workers=1, progress=False)
    return folder


def test_files_shards_and_members(crops):
    manifest = json.loads((crops / "manifest.json").read_text())
    assert manifest["config"]["count"] == 6 and len(manifest["shards"]) == 2
    shard = read_npz(crops / manifest["shards"][0])
    height, width = synth_crops.canvas_size(CROP, manifest["config"]["pad"])
    assert shard["images"].shape == (3, height, width, 3) and shard["images"].dtype == np.uint8
    assert {name: shard[name].shape[1:] for name in synth_crops.MEMBERS if name != "images"} == {
        "pose": (72,), "betas": (10,), "joints_3d": (24, 3), "joints_2d": (24, 2), "keypoints_2d": (18, 2),
        "camera": (3, 3), "action": ()}
    config, arrays = synth_crops.load_crops(crops)
    assert len(arrays["images"]) == 6
    # every sample its own body, and the picture is not one flat colour
    assert len(np.unique(arrays["betas"][:, 0])) == 6
    assert all(image.std() > 5 for image in arrays["images"])


def test_resume_grow_and_cache(crops, tmp_path):
    """A deleted shard (an interrupted run) is rendered again, identical; the same config writes
    nothing; more samples keep the shards made; a different config replaces them."""
    folder = tmp_path / "set"
    synth_crops.generate_crops(folder, count=6, crop_size=CROP, shard_size=3, workers=1, progress=False)
    names = json.loads((folder / "manifest.json").read_text())["shards"]
    first = read_npz(folder / names[0])
    (folder / names[0]).unlink()
    (folder / "manifest.json").unlink()
    kept = (folder / names[1]).stat().st_mtime_ns
    synth_crops.generate_crops(folder, count=6, crop_size=CROP, shard_size=3, workers=1, progress=False)
    again = read_npz(folder / names[0])
    assert all(np.array_equal(first[name], again[name]) for name in synth_crops.MEMBERS)
    assert (folder / names[1]).stat().st_mtime_ns == kept
    manifest_time = (folder / "manifest.json").stat().st_mtime_ns
    synth_crops.generate_crops(folder, count=6, crop_size=CROP, shard_size=3, workers=1, progress=False)
    assert (folder / "manifest.json").stat().st_mtime_ns == manifest_time
    # growing to 8 keeps both full shards and adds one of 2
    synth_crops.generate_crops(folder, count=8, crop_size=CROP, shard_size=3, workers=1, progress=False)
    grown = json.loads((folder / "manifest.json").read_text())["shards"]
    assert grown[:2] == names and (folder / names[1]).stat().st_mtime_ns == kept and len(grown) == 3
    # the same samples as the folder made in one go by the fixture (which did not grow)
    _, arrays = synth_crops.load_crops(crops)
    _, grown_arrays = synth_crops.load_crops(folder)
    assert np.array_equal(arrays["betas"], grown_arrays["betas"][:6])
    synth_crops.generate_crops(folder, count=3, crop_size=CROP, shard_size=3, seed=5, workers=1, progress=False)
    assert sorted(p.name for p in folder.glob("shard_*")) == json.loads((folder / "manifest.json").read_text())["shards"]


def test_targets_agree_with_the_body_model_and_camera(crops):
    """The camera-frame pose posed by the body model gives the stored joints (moved to the stored
    pelvis), which the canvas camera projects onto the stored 2D joints."""
    _, a = synth_crops.load_crops(crops)
    pose, betas = torch.as_tensor(a["pose"]), torch.as_tensor(a["betas"])
    _, joints = posed_smpl(pose, betas)
    stored = torch.as_tensor(a["joints_3d"])
    torch.testing.assert_close(joints - joints[:, :1], stored - stored[:, :1], atol=2e-4, rtol=0)
    projected = stored @ torch.as_tensor(a["camera"]).transpose(1, 2)
    torch.testing.assert_close(projected[..., :2] / projected[..., 2:], torch.as_tensor(a["joints_2d"]),
                               atol=1e-3, rtol=0)


def test_render_matches_the_reference_renderer():
    """The canvas renderer (camera, light and per-vertex colours re-aimed per sample, normals given rather than
    recomputed by pyvista) draws what `render_person` draws (tested against a rasteriser of
    `Camera.project`): the same silhouette, the same colours to a level or two."""
    from hmrlab.data.cameras import Camera
    from hmrlab.data.render import Lighting, render_person

    worker = synth_crops._Worker()
    with torch.no_grad():
        vertices, _ = worker.model(betas=torch.zeros(1, 10))
    vertices = vertices[0].double().numpy() * [1, -1, -1] + [0.0, 0.0, 3.0]  # half a turn about x: upright, facing us
    camera = synth_crops._canvas_camera(vertices, (48, 48), 6, 1.25)
    light = Lighting(direction=(0.3, -0.5, -1.0), intensity=1.1, temperature=5000.0, ambient=0.25)
    reference, reference_mask = render_person(
        vertices, worker.faces, Camera(np.eye(3), np.zeros(3), np.diag(camera)[:2], camera[:2, 2], (60, 60)),
        light=light, color=(0.8, 0.6, 0.5))
    scene = synth_crops._crop_scene(vertices, worker.faces, camera, (60, 60))
    normals = synth_crops.vertex_normals(vertices, worker.faces, worker.incidence)
    colours = np.tile([0.8, 0.6, 0.5], (len(vertices), 1))  # an outfit of one colour: per-vertex, as outfits give
    rgb, mask = scene.render_sample(vertices, normals, camera, light, colours)
    scene.close()
    assert np.array_equal(mask, reference_mask) and mask.sum() > 200
    difference = np.abs(rgb.astype(int) - reference.astype(int))[mask]
    assert difference.mean() < 1.5 and difference.max() <= 16
    # the box of the projected points is the crop region: 48 / 1.25 = 38.4 pixels high, centred
    uv = vertices @ camera.T
    rows = uv[:, 1] / uv[:, 2]
    assert rows.max() - rows.min() == pytest.approx(38.4, abs=1e-6)
    assert (rows.max() + rows.min()) / 2 == pytest.approx(29.5, abs=1e-6)


def test_vertex_normals_point_outward():
    worker = synth_crops._Worker()
    vertices = worker.model.v_template.double().numpy()
    normals = synth_crops.vertex_normals(vertices, worker.faces, worker.incidence)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=-1), 1.0, atol=1e-6)
    # on a closed-ish body the normals point away from the centre: the top of the head up, the front forward
    assert normals[vertices[:, 1].argmax(), 1] > 0.9 and normals[vertices[:, 2].argmax(), 2] > 0.5


def test_dataset_items_match_mesh_samples_and_the_canvas(crops):
    """SynthCrops items have `MeshSamples`' keys, shapes and dtypes; unaugmented, the crop is the
    canvas' centre and the targets are the stored ones moved into the crop."""
    samples = SynthCrops(crops)
    item = samples[4]
    assert {key: tuple(value.shape) for key, value in item.items()} == {
        "image": (3, *CROP), "pose": (72,), "betas": (10,), "joints_3d": (24, 3), "joints_2d": (24, 2),
        "camera": (3, 3), "affine": (2, 3)}
    assert all(value.dtype == torch.float32 for value in item.values())
    pad = samples.config["pad"]
    centre = samples.arrays["images"][4][pad:-pad, pad:-pad].astype(np.float32)
    assert np.abs(item["image"].permute(1, 2, 0).numpy() * 255 - centre).max() <= 1.0
    torch.testing.assert_close(item["joints_2d"], torch.as_tensor(samples.arrays["joints_2d"][4]) - pad,
                               atol=1e-3, rtol=0)
    assert np.allclose(item["pose"], samples.arrays["pose"][4])
    resized = SynthCrops(crops, crop_size=(16, 16))[4]
    torch.testing.assert_close(resized["joints_2d"], (item["joints_2d"] + 0.5) / 2 - 0.5, atol=1e-3, rtol=0)


def test_seeds_kept_apart_from_the_benchmark():
    """Shard k draws from SeedSequence([seed, CROP_KEY, k]), benchmark sequence k from
    SeedSequence([seed, crc32("3dpw-k")]): no benchmark key equals CROP_KEY, so no two share a generator."""
    keys = {zlib.crc32(f"3dpw-{k}".encode()) for k in range(10**6)}
    assert synth_crops.CROP_KEY not in keys
    assert synth_crops.DEFAULT_SEED != 0  # the benchmark set's seed


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="count must be"):
        synth_crops.generate_crops(tmp_path, count=0)
    with pytest.raises(ValueError, match="crop_size"):
        synth_crops.generate_crops(tmp_path, count=2, crop_size=(8, 8))
    with pytest.raises(FileNotFoundError, match="generate_crops"):
        SynthCrops(tmp_path / "missing")
