"""hmrlab.data.render: renders checked against an independent rasteriser of `Camera.project` (a pixel
belongs to the silhouette when its centre lies in a projected triangle), crops against their affine
map on a linear image, backgrounds for determinism."""

import numpy as np
import pytest
from scipy import ndimage

from hmrlab.body import body_model_arrays
from hmrlab.data.cameras import Camera, h36m_like_cameras
from hmrlab.data.crops import apply_affine, person_crop
from hmrlab.data.render import (
    Lighting,
    color_temperature_rgb,
    random_background,
    random_body_color,
    random_lighting,
    render_clip,
    render_person,
)


@pytest.fixture(scope="module")
def body():
    """The free model's rest mesh standing on the floor (pelvis 0.9 m up), with its H36M joints."""
    arrays = body_model_arrays("smpl")
    vertices = arrays["v_template"] + np.array([0.0, 0.9, 0.0])
    joints = arrays["J_regressor_h36m"] @ vertices
    return vertices, arrays["f"].astype(np.int64), joints


def rasterize(pixels: np.ndarray, faces: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: pixel centres (integer coordinates) inside any projected triangle (F, 3) of (N, 2) pixels."""
    width, height = image_size
    triangles = pixels[faces]
    low = np.maximum(np.ceil(triangles.min(1)).astype(int), 0)
    high = np.minimum(np.floor(triangles.max(1)).astype(int), (width - 1, height - 1))
    nx, ny = np.maximum(high - low + 1, 0).T
    count = nx * ny
    tri = np.repeat(np.arange(len(faces)), count)
    k = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    centres = np.column_stack([low[tri, 0] + k % nx[tri], low[tri, 1] + k // nx[tri]])
    a, b, c = (triangles[tri, i] for i in range(3))

    def side(p, q, r):  # z of (q - p) x (r - p): which side of the edge p->q the point r lies on
        return (q[:, 0] - p[:, 0]) * (r[:, 1] - p[:, 1]) - (q[:, 1] - p[:, 1]) * (r[:, 0] - p[:, 0])

    sides = np.stack([side(a, b, centres), side(b, c, centres), side(c, a, centres)])
    inside = (sides >= 0).all(0) | (sides <= 0).all(0)
    silhouette = np.zeros((height, width), dtype=bool)
    silhouette[centres[inside, 1], centres[inside, 0]] = True
    return silhouette


def test_rectangle_mask_is_exactly_the_pixels_inside_its_projection():
    # A look-at camera with f_x != f_y and an off-centre principal point; a rectangle facing it.
    camera = Camera.look_at(
        (1.0, 1.4, 3.0), (0.0, 1.0, 0.0), focal=(210.0, 190.0), image_size=(180, 140), center=(93.3, 61.8)
    )
    rng = np.random.default_rng(0)
    for _ in range(3):
        x0, x1 = np.sort(rng.uniform(-0.45, 0.45, 2))
        y0, y1 = np.sort(rng.uniform(-0.3, 0.3, 2))
        in_camera = np.array([[x0, y0, 2.5], [x1, y0, 2.5], [x1, y1, 2.5], [x0, y1, 2.5]])
        corners = (in_camera - camera.t) @ camera.R  # back to the world: R^T (X_cam - t)
        _, mask = render_person(corners, np.array([[0, 1, 2], [0, 2, 3]]), camera)
        (u0, v0), (u1, v1) = camera.project(corners)[[0, 2]]
        cols, rows = np.arange(180), np.arange(140)
        expected = ((rows >= v0) & (rows <= v1))[:, None] & ((cols >= u0) & (cols <= u1))[None, :]
        np.testing.assert_array_equal(mask, expected)


def test_body_render_agrees_with_projection(body):
    vertices, faces, _ = body
    background = random_background((200, 200), np.random.default_rng(0))
    for camera in h36m_like_cameras(2, np.random.default_rng(1)):
        camera = camera.scaled(0.2)
        assert camera.image_size == (200, 200)
        rgb, mask = render_person(vertices, faces, camera, background=background)
        pixels = camera.project(vertices)
        reference = rasterize(pixels, faces, camera.image_size)
        assert (mask != reference).sum() <= 0.005 * reference.sum()
        rows, cols = np.nonzero(mask)
        ref_rows, ref_cols = np.nonzero(reference)
        assert abs(cols.mean() - ref_cols.mean()) < 0.5 and abs(rows.mean() - ref_rows.mean()) < 0.5
        # Every projected vertex is on or next to the mask (sub-pixel fingers may cover no pixel centre).
        distance = ndimage.distance_transform_edt(~mask)
        at_vertices = distance[np.round(pixels[:, 1]).astype(int), np.round(pixels[:, 0]).astype(int)]
        assert (at_vertices <= 1).mean() > 0.99 and at_vertices.max() <= 3
        assert 0 < mask.mean() < 0.5
        np.testing.assert_array_equal(rgb[~mask], background[~mask])
        assert (rgb[mask] != background[mask]).any(axis=-1).mean() > 0.9


def test_render_clip_one_background_per_clip(body):
    vertices, faces, _ = body
    camera = h36m_like_cameras(1)[0].scaled(0.1)
    height = camera.image_size[1]
    shifts = np.array([[0.0, 0.0, 0.0], [0.3, 0.0, 0.0], [0.0, 0.2, 0.0]])
    background = random_background((height, camera.image_size[0]), np.random.default_rng(3))
    rng = np.random.default_rng(4)
    frames, masks = render_clip(
        vertices[None] + shifts[:, None], faces, camera, background=background, light=random_lighting(rng),
        color=random_body_color(rng),
    )
    assert frames.shape == (3, height, camera.image_size[0], 3) and frames.dtype == np.uint8
    assert masks.shape == (3, height, camera.image_size[0]) and masks.dtype == bool
    for frame, mask in zip(frames, masks):
        np.testing.assert_array_equal(frame[~mask], background[~mask])
    assert not np.array_equal(masks[0], masks[1])
    plain, none = render_clip(vertices[None], faces, camera, with_mask=False)
    assert none is None and plain.shape == (1, height, camera.image_size[0], 3)
    with pytest.raises(ValueError, match="with_mask"):
        render_clip(vertices[None], faces, camera, background=background, with_mask=False)
    with pytest.raises(ValueError, match="background"):
        render_person(vertices, faces, camera, background=background[:-1])
    with pytest.raises(ValueError, match=r"\(F, 3\)"):
        render_person(vertices, faces[:, :2], camera)


def test_crop_affine_puts_the_keypoints_on_the_person(body):
    vertices, faces, joints = body
    camera = h36m_like_cameras(1)[0].scaled(0.25)
    rgb, mask = render_person(vertices, faces, camera)
    keypoints = camera.project(joints)
    for size in [(224, 224), (256, 192)]:
        crop, affine = person_crop(rgb, keypoints, size=size, scale=1.25)
        mask_crop, same = person_crop(mask, keypoints, size=size, scale=1.25)
        np.testing.assert_array_equal(affine, same)
        assert crop.shape == (*size, 3) and crop.dtype == np.uint8 and mask_crop.dtype == bool
        assert affine[0, 0] == affine[1, 1] and affine[0, 1] == affine[1, 0] == 0  # aspect kept
        in_crop = np.round(apply_affine(keypoints, affine)).astype(int)
        assert mask_crop[in_crop[:, 1], in_crop[:, 0]].mean() > 0.85  # joints lie inside the body
        # The keypoints' box, enlarged 1.25 times about its centre, spans the crop in its long side.
        low, high = in_crop.min(0), in_crop.max(0)
        fill = (high - low) / np.array(size[::-1])
        assert max(fill) == pytest.approx(1 / 1.25, abs=0.02)
        assert np.allclose((low + high) / 2, (np.array(size[::-1]) - 1) / 2, atol=1.5)


def test_crop_samples_the_image_through_its_affine():
    # On a linear image, bilinear sampling is exact: each crop pixel holds the source column at the
    # inverse-mapped position; pixels mapping outside the image hold the fill value.
    height, width = 60, 80
    image = np.repeat(np.arange(width, dtype=np.float64)[None], height, axis=0)[..., None].repeat(2, -1)
    box = np.array([50.0, 20.0, 90.0, 50.0])  # runs past the right border
    crop, affine = person_crop(image, box, size=(64, 64), scale=1.0, fill=-1.0)
    s, tx = affine[0, 0], affine[0, 2]
    assert s > 1  # enlarged: no pre-blur
    source_cols = (np.arange(64) - tx) / s
    inside = (source_cols >= 0) & (source_cols <= width - 1)
    np.testing.assert_allclose(crop[0, inside, 0], source_cols[inside], atol=1e-9)
    assert (crop[:, source_cols > width - 0.5] == -1.0).all()
    np.testing.assert_allclose(apply_affine(np.array([[50.0, 35.0], [90.0, 35.0]]), affine)[:, 0], [-0.5, 63.5])


def test_backgrounds_are_deterministic_and_varied():
    first = random_background((48, 64), np.random.default_rng(0))
    assert first.shape == (48, 64, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, random_background((48, 64), np.random.default_rng(0)))
    images = [random_background((48, 64), np.random.default_rng(seed)) for seed in range(12)]
    assert all(image.std() > 2 for image in images)  # none is a flat colour
    assert len({image.tobytes() for image in images}) == 12


def test_lights_and_colours():
    rgb = [color_temperature_rgb(kelvin) for kelvin in (2000, 3000, 5000, 6500, 10000)]
    reds_over_blues = [red / blue for red, _, blue in rgb]
    assert np.all(np.diff(reds_over_blues) < 0)  # warmer light is redder
    rng = np.random.default_rng(0)
    for _ in range(20):
        light = random_lighting(rng)
        assert np.linalg.norm(light.direction) == pytest.approx(1.0) and light.direction[2] < 0  # camera side
        assert all(0 <= c <= 1 for c in random_body_color(rng))
    assert isinstance(Lighting().ambient, float)
    with pytest.raises(ValueError, match="kelvin"):
        color_temperature_rgb(500)
