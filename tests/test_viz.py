"""Plotting helpers: figure contents checked against the skeleton tree and closed-form geometry,
renders checked for orientation (the person's left, +x, on the image's right in the front view)."""

import json
import os

os.environ.setdefault("PYVISTA_OFF_SCREEN", "true")  # before pyvista is imported

import numpy as np
import plotly.io as pio
import pytest
import pyvista as pv
import torch

from hmrlab import viz
from hmrlab.body.skeletons import SMPL_24

RADIUS = 0.5
close = dict(rtol=1e-6, atol=1e-7)  # figures store coordinates in float32


def sphere(resolution: int, center=(0.0, 0.0, 0.0), radius: float = RADIUS) -> tuple[np.ndarray, np.ndarray]:
    mesh = pv.Sphere(radius=radius, center=center, theta_resolution=resolution, phi_resolution=resolution + 2)
    return np.asarray(mesh.points), np.asarray(mesh.regular_faces)


def coords(trace) -> np.ndarray:
    """(N, 3) coordinates of a Scatter3d trace, None/NaN gaps as NaN rows."""
    return np.stack([np.asarray(getattr(trace, a), dtype=float) for a in "xyz"], axis=1)


def segments(trace) -> list[tuple[np.ndarray, np.ndarray]]:
    """Line segments of a NaN-separated bones trace as (start, end) pairs."""
    rows = coords(trace)
    gaps = np.flatnonzero(np.isnan(rows).any(axis=1))
    pieces = np.split(rows, gaps)
    pieces = [p[~np.isnan(p).any(axis=1)] for p in pieces]
    assert all(len(p) == 2 for p in pieces if len(p)), "each bone is one two-point segment"
    return [(p[0], p[1]) for p in pieces if len(p)]


@pytest.fixture
def joints() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(SMPL_24.num_joints, 3))


def test_skeleton_figure_draws_one_segment_per_bone_and_one_marker_per_joint(joints):
    fig = viz.skeleton_figure(torch.as_tensor(joints), SMPL_24.parents, names=SMPL_24.joint_names)
    bones, markers = fig.data
    drawn = segments(bones)
    expected = SMPL_24.bones()
    assert len(drawn) == len(expected) == SMPL_24.num_joints - 1
    for (start, end), (parent, child) in zip(drawn, expected):
        np.testing.assert_allclose(start, joints[parent], **close)
        np.testing.assert_allclose(end, joints[child], **close)
    np.testing.assert_allclose(coords(markers), joints, **close)
    assert list(markers.text) == list(SMPL_24.joint_names)
    assert fig.layout.scene.aspectmode == "data"
    up = fig.layout.scene.camera.up
    assert (up.x, up.y, up.z) == (0, 1, 0)


def test_other_skeleton_adds_traces_in_another_colour(joints):
    single = viz.skeleton_figure(joints, SMPL_24.parents)
    both = viz.skeleton_figure(joints, SMPL_24.parents, other=joints + 0.1, other_label="ground truth")
    assert len(both.data) > len(single.data)
    extra = both.data[len(single.data):]
    assert {t.name for t in extra} == {"ground truth"}
    assert extra[0].line.color != both.data[0].line.color
    np.testing.assert_allclose(coords(extra[-1]), joints + 0.1, **close)


@pytest.mark.parametrize(
    ("parents", "match"),
    [((-1, 0, 2), "parents must list each joint's parent before"), ((-1, 0), "parents must have shape")],
)
def test_bad_trees_are_rejected(parents, match):
    with pytest.raises(ValueError, match=match):
        viz.skeleton_figure(np.zeros((3, 3)), parents)


def test_bad_points_and_faces_are_rejected():
    vertices, faces = sphere(8)
    with pytest.raises(ValueError, match=r"joints must have shape \(\.\.\., N, 3\)"):
        viz.skeleton_figure(np.zeros((3, 2)), (-1, 0, 1))
    with pytest.raises(ValueError, match=r"faces must have shape \(F, 3\)"):
        viz.mesh_figure(vertices, faces[:, :2])
    with pytest.raises(ValueError, match="integer vertex indices"):
        viz.mesh_figure(vertices, faces.astype(float))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 9\]"):
        viz.render_mesh(vertices[:10], faces)
    with pytest.raises(ValueError, match=r"pass the \(J, 3\) joints"):
        viz.mesh_figure(vertices, faces, parents=SMPL_24.parents)


def test_mesh_figure_decimates_large_meshes_and_keeps_small_ones():
    vertices, faces = sphere(100)
    assert len(faces) == 20_000
    fig = viz.mesh_figure(vertices, faces, max_faces=5000)
    mesh = fig.data[0]
    kept = np.stack([mesh.i, mesh.j, mesh.k], axis=1)
    assert 4000 <= len(kept) <= 5000
    # Quadric decimation keeps the surface: every remaining vertex stays on the sphere.
    np.testing.assert_allclose(np.linalg.norm(coords(mesh), axis=1), RADIUS, atol=0.01)

    small_vertices, small_faces = sphere(10)
    small = viz.mesh_figure(torch.as_tensor(small_vertices), torch.as_tensor(small_faces)).data[0]
    np.testing.assert_array_equal(np.stack([small.i, small.j, small.k], axis=1), small_faces)
    np.testing.assert_allclose(coords(small), small_vertices, **close)


def test_mesh_figure_overlays_a_skeleton(joints):
    vertices, faces = sphere(10)
    fig = viz.mesh_figure(vertices, faces, joints=joints, parents=SMPL_24.parents)
    assert [t.type for t in fig.data] == ["mesh3d", "scatter3d", "scatter3d"]
    assert len(segments(fig.data[1])) == SMPL_24.num_joints - 1


def test_animation_has_one_frame_per_step_a_slider_and_fixed_ranges(joints):
    steps = 6
    sequence = joints[None] + np.linspace(0.0, 2.0, steps)[:, None, None] * np.array([1.0, 0.0, 0.0])
    fig = viz.animate_skeleton(sequence, SMPL_24.parents, fps=10, other=sequence - 0.2)
    assert len(fig.frames) == steps
    assert len(fig.layout.sliders[0].steps) == steps
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["Play", "Pause"]
    assert fig.layout.updatemenus[0].buttons[0].args[1]["frame"]["duration"] == pytest.approx(100.0)
    assert [t.type for t in fig.data] == ["scatter3d"] * 4  # bones and joints of both skeletons
    np.testing.assert_allclose(coords(fig.data[1]), sequence[0], **close)
    for t, frame in enumerate(fig.frames):
        assert list(frame.traces) == [0, 1, 2, 3]
        assert len(segments(frame.data[0])) == SMPL_24.num_joints - 1
        np.testing.assert_allclose(coords(frame.data[1]), sequence[t], **close)
        np.testing.assert_allclose(coords(frame.data[3]), sequence[t] - 0.2, **close)
    everything = np.concatenate([sequence, sequence - 0.2]).reshape(-1, 3)
    for axis, low, high in zip("xyz", everything.min(0), everything.max(0)):
        lo, hi = fig.layout.scene[f"{axis}axis"].range
        assert lo <= low and hi >= high
        assert fig.layout.scene[f"{axis}axis"].autorange is False


def foreground(image: np.ndarray, background=(255, 255, 255)) -> np.ndarray:
    return (image != np.array(background, dtype=np.uint8)).any(axis=-1)


def test_render_mesh_shows_the_mesh_on_the_background():
    vertices, faces = sphere(30)
    image = viz.render_mesh(vertices, faces, image_size=(120, 160), background="black")
    assert image.shape == (120, 160, 3) and image.dtype == np.uint8
    mask = foreground(image, background=(0, 0, 0))
    assert mask[50:70, 70:90].all()
    assert not mask[[0, 0, -1, -1], [0, -1, 0, -1]].any()


def test_front_view_puts_the_persons_left_on_the_image_right_and_up_on_top():
    # A big sphere at the person's right (-x) and a small one up and to their left (+x, +y).
    big_v, big_f = sphere(20, center=(-0.6, 0.0, 0.0), radius=0.5)
    small_v, small_f = sphere(20, center=(0.6, 0.4, 0.0), radius=0.15)
    vertices = np.concatenate([big_v, small_v])
    faces = np.concatenate([big_f, small_f + len(big_v)])
    mask = foreground(viz.render_mesh(vertices, faces, image_size=(128, 128)))
    rows, cols = np.nonzero(mask)
    height_per_column = mask.sum(axis=0)
    # The tallest columns (big sphere) are on the left half, the small sphere on the upper right.
    assert np.argmax(height_per_column) < 64
    right = cols > 96
    assert right.any() and rows[right].mean() < rows[~right].mean()


def test_shifting_the_mesh_along_x_moves_it_right_in_a_fixed_front_camera():
    vertices, faces = sphere(20, radius=0.3)
    camera = [(0.0, 0.0, 5.0), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0)]
    centre_cols = []
    for shift in (-0.5, 0.0, 0.5):
        mask = foreground(viz.render_mesh(vertices + (shift, 0.0, 0.0), faces, camera=camera))
        centre_cols.append(np.nonzero(mask)[1].mean())
    assert centre_cols[0] < centre_cols[1] - 10 < centre_cols[2] - 20


def test_render_mesh_closes_its_plotter():
    from pyvista.plotting.plotter import _ALL_PLOTTERS  # pyvista's registry of open plotters

    vertices, faces = sphere(10)
    before = len(_ALL_PLOTTERS)
    for _ in range(3):
        viz.render_mesh(vertices, faces, image_size=(32, 32))
    assert len(_ALL_PLOTTERS) == before


@pytest.fixture
def restore_output_settings(monkeypatch):
    monkeypatch.setattr(pio.renderers, "default", pio.renderers.default)
    monkeypatch.setattr(pv, "OFF_SCREEN", pv.OFF_SCREEN)
    monkeypatch.setattr(pv.global_theme, "jupyter_backend", pv.global_theme.jupyter_backend)
    return monkeypatch


def test_configure_notebook_output_honours_the_environment(restore_output_settings):
    env = restore_output_settings
    env.setenv("PLOTLY_RENDERER", "json")
    env.setenv("PYVISTA_OFF_SCREEN", "true")
    env.setenv("PYVISTA_JUPYTER_BACKEND", "static")
    env.setattr(pv, "OFF_SCREEN", False)
    viz.configure_notebook_output()
    viz.configure_notebook_output()
    assert pio.renderers.default == "json"
    assert pv.OFF_SCREEN is True
    assert pv.global_theme.jupyter_backend == "static"


def test_default_plotly_output_is_figure_json_without_plotly_js(restore_output_settings, joints):
    restore_output_settings.delenv("PLOTLY_RENDERER", raising=False)
    viz.configure_notebook_output()
    assert pio.renderers.default == "plotly_mimetype"
    fig = viz.skeleton_figure(joints, SMPL_24.parents, names=SMPL_24.joint_names, other=joints + 0.1)
    bundle = fig._repr_mimebundle_()  # what IPython stores in the notebook
    assert set(bundle) == {"application/vnd.plotly.v1+json"}
    text = json.dumps(bundle)
    assert len(text) < 100_000
    assert "window.Plotly" not in text and "plotly.js v" not in text


def test_pyvista_backend_is_static_without_a_display(monkeypatch):
    import pyvista as pv

    for name in ("PYVISTA_JUPYTER_BACKEND", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    viz.configure_notebook_output()
    assert pv.global_theme.jupyter_backend == "static"


def test_overlay_mesh_draws_where_the_camera_projects():
    """The mesh covers the pixels its vertices project to (through the enlarged camera), and leaves
    the rest of the picture as it was, enlarged."""
    from hmrlab.viz import overlay_mesh

    image = np.full((32, 24, 3), 30, np.uint8)
    intrinsics = np.array([[40.0, 0.0, 11.5], [0.0, 40.0, 15.5], [0.0, 0.0, 1.0]])
    # a small square facing the camera, 2 m away, centred on the optical axis
    vertices = np.array([[-0.1, -0.1, 2.0], [0.1, -0.1, 2.0], [0.1, 0.1, 2.0], [-0.1, 0.1, 2.0]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    out = overlay_mesh(image, vertices, faces, intrinsics, upscale=4, alpha=1.0)
    assert out.shape == (128, 96, 3) and out.dtype == np.uint8
    # the square spans +-0.1 * 40 / 2 = +-2 pixels around the principal point: +-8 pixels enlarged
    centre = out[62:66, 46:50]
    assert (np.abs(centre.astype(int) - 30).max(-1) > 20).all()
    assert (out[:40] == 30).all() and (out[:, :30] == 30).all()
    with pytest.raises(ValueError, match="intrinsics"):
        overlay_mesh(image, vertices, faces, np.eye(2))
