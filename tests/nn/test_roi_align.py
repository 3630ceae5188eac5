"""hmrlab.nn.roi_align against a NumPy loop written from torchvision's semantics, closed forms, gradcheck."""

import math

import numpy as np
import pytest
import torch

from hmrlab.nn.roi_align import roi_align

pytestmark = pytest.mark.usefixtures("one_thread")


def bilinear_reference(image, y, x):
    """torchvision's bilinear read of one (H, W) channel at (y, x), one sample at a time."""
    height, width = image.shape
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_low = y_high = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = x_high = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1 - ly, 1 - lx
    return (hy * hx * image[y_low, x_low] + hy * lx * image[y_low, x_high]
            + ly * hx * image[y_high, x_low] + ly * lx * image[y_high, x_high])


def roi_align_reference(features, boxes, output_size, spatial_scale, sampling_ratio, aligned):
    """RoIAlign as nested loops over boxes, channels, bins and samples (float64 NumPy)."""
    features, boxes = np.asarray(features, np.float64), np.asarray(boxes, np.float64)
    out_h, out_w = output_size
    out = np.zeros((len(boxes), features.shape[1], out_h, out_w))
    offset = 0.5 if aligned else 0.0
    for k, (b, x1, y1, x2, y2) in enumerate(boxes):
        start_x, start_y = x1 * spatial_scale - offset, y1 * spatial_scale - offset
        box_w, box_h = x2 * spatial_scale - offset - start_x, y2 * spatial_scale - offset - start_y
        if not aligned:
            box_w, box_h = max(box_w, 1.0), max(box_h, 1.0)
        bin_h, bin_w = box_h / out_h, box_w / out_w
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(box_h / out_h)
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(box_w / out_w)
        count = max(grid_h * grid_w, 1)
        for c in range(features.shape[1]):
            for ph in range(out_h):
                for pw in range(out_w):
                    total = 0.0
                    for iy in range(grid_h):
                        y = start_y + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                        for ix in range(grid_w):
                            x = start_x + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                            total += bilinear_reference(features[int(b), c], y, x)
                    out[k, c, ph, pw] = total / count
    return out


def random_boxes(generator, count, batch, height, width, scale=1.0):
    """Boxes of all kinds: inside, crossing the border, tiny (< 1 px) and far outside."""
    rows = []
    for _ in range(count):
        x1, y1 = generator.uniform(-4, width / scale), generator.uniform(-4, height / scale)
        w, h = generator.choice([0.3, generator.uniform(1, 12 / scale)]), generator.uniform(0.5, 10 / scale)
        rows.append([generator.integers(batch), x1, y1, x1 + w, y1 + h])
    rows.append([0, -30.0, -30.0, -20.0, -25.0])  # entirely outside: zeros
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 0, 1, 2, 3])
@pytest.mark.parametrize("spatial_scale", [1.0, 0.5])
def test_matches_the_loop_reference(aligned, sampling_ratio, spatial_scale):
    generator = np.random.default_rng(3)
    features = torch.from_numpy(generator.normal(size=(2, 3, 7, 9)))
    boxes = random_boxes(generator, 6, 2, 7, 9, spatial_scale)
    ours = roi_align(features, boxes, (3, 4), spatial_scale, sampling_ratio, aligned)
    expected = roi_align_reference(features, boxes, (3, 4), spatial_scale, sampling_ratio, aligned)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_whole_image_at_its_own_size_is_the_identity():
    image = torch.randn(1, 3, 6, 5, dtype=torch.float64)
    box = torch.tensor([[0.0, 0.0, 0.0, 5.0, 6.0]], dtype=torch.float64)
    out = roi_align(image, box, (6, 5), aligned=True, sampling_ratio=1)
    assert torch.equal(out[0], image[0])


def test_linear_image_gives_its_value_at_each_bin_centre():
    # Bilinear interpolation reproduces a linear function exactly, and a bin's samples are
    # symmetric about its centre, so each output is the function at the bin centre (aligned: the
    # box [x1, x2] in pixel-edge coordinates covers pixel-centre coordinates [x1 - 0.5, x2 - 0.5]).
    height, width = 20, 30
    y, x = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij")
    image = (2.0 * y - 3.0 * x + 1.0)[None, None]
    x1, y1, x2, y2 = 4.3, 2.7, 17.9, 11.1
    out = roi_align(image, torch.tensor([[0.0, x1, y1, x2, y2]], dtype=torch.float64), (4, 5), aligned=True)
    rows = y1 - 0.5 + (torch.arange(4, dtype=torch.float64) + 0.5) * (y2 - y1) / 4
    cols = x1 - 0.5 + (torch.arange(5, dtype=torch.float64) + 0.5) * (x2 - x1) / 5
    expected = 2.0 * rows[:, None] - 3.0 * cols[None, :] + 1.0
    torch.testing.assert_close(out[0, 0], expected, rtol=0, atol=1e-12)


def test_gradcheck_features_and_boxes():
    torch.manual_seed(0)
    features = torch.randn(2, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    # Corners away from sample-grid changes and integer crossings, where the map is smooth.
    corners = torch.tensor([[1.3, 0.7, 4.6, 4.2], [0.45, 1.15, 5.35, 3.9]], dtype=torch.float64, requires_grad=True)
    index = torch.tensor([[0.0], [1.0]], dtype=torch.float64)

    def crop(f, c):
        return roi_align(f, torch.cat([index, c], 1), (2, 3), sampling_ratio=2, aligned=True)

    assert torch.autograd.gradcheck(crop, (features, corners))


def test_batch_index_selects_the_image_and_empty_boxes():
    features = torch.randn(3, 2, 5, 5)
    boxes = torch.tensor([[2.0, 0.0, 0.0, 5.0, 5.0], [0.0, 0.0, 0.0, 5.0, 5.0]])
    out = roi_align(features, boxes, 5, aligned=True, sampling_ratio=1)
    assert torch.allclose(out[0], features[2]) and torch.allclose(out[1], features[0])
    assert roi_align(features, boxes[:0], (2, 3)).shape == (0, 2, 2, 3)


@pytest.mark.parametrize(
    "features, boxes, match",
    [
        (torch.zeros(1, 5, 5), torch.zeros(1, 5), r"features must have shape \(N, C, H, W\)"),
        (torch.zeros(1, 1, 5, 5), torch.zeros(1, 4), r"boxes must have shape \(K, 5\)"),
        (torch.zeros(1, 1, 5, 5), torch.tensor([[1.0, 0, 0, 2, 2]]), r"whole image indices in \[0, 0\]"),
        (torch.zeros(1, 1, 5, 5), torch.tensor([[0.0, 0, 0, float("nan"), 2]]), "NaN"),
    ],
)
def test_bad_inputs_raise(features, boxes, match):
    with pytest.raises(ValueError, match=match):
        roi_align(features, boxes, 2)


def test_bad_output_size_and_scale_raise():
    with pytest.raises(ValueError, match="output_size"):
        roi_align(torch.zeros(1, 1, 5, 5), torch.zeros(1, 5), (0, 2))
    with pytest.raises(ValueError, match="spatial_scale"):
        roi_align(torch.zeros(1, 1, 5, 5), torch.zeros(1, 5), 2, spatial_scale=0.0)
