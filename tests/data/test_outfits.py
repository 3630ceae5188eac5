"""hmrlab.data.outfits: per-vertex clothes, skin, hair and eyes that tell front from back."""

from __future__ import annotations

import numpy as np
import pytest

from hmrlab.body import body_model_arrays
from hmrlab.data.outfits import FEET, HEAD, TORSO, outfit_parts, random_outfit


@pytest.fixture(scope="module")
def parts():
    return outfit_parts(body_model_arrays("smpl"))


def test_parts_read_off_the_model(parts):
    arrays = body_model_arrays("smpl")
    assert parts.labels.shape == (len(arrays["v_template"]),)
    np.testing.assert_array_equal(parts.labels, arrays["weights"].argmax(1))
    assert 2 <= parts.eyes.sum() < 600 and np.isin(parts.labels[parts.eyes], HEAD).all()
    # the eyes are on the front of the head: in front of the ears
    assert (parts.behind[parts.eyes] < 0).all()


def test_outfit_colours_and_front_back_difference(parts):
    rng = np.random.default_rng(0)
    head = np.isin(parts.labels, HEAD)
    front, back = head & (parts.behind < -0.03) & (np.abs(parts.above) < 0.03), head & (parts.behind > 0.03)
    differs = 0
    for _ in range(50):
        colours = random_outfit(parts, rng)
        assert colours.shape == (len(parts.labels), 3) and colours.dtype == np.float32
        assert colours.min() >= 0 and colours.max() <= 1
        # one colour per garment: the torso's shirt and the feet's shoes are uniform
        assert np.ptp(colours[np.isin(parts.labels, TORSO[1:])], axis=0).max() == 0
        assert np.ptp(colours[np.isin(parts.labels, FEET)], axis=0).max() == 0
        differs += np.abs(colours[front].mean(0) - colours[back].mean(0)).max() > 0.05
    assert differs >= 40  # nine people in ten have hair: the back of the head differs from the face


def test_needs_the_landmarks():
    arrays = dict(body_model_arrays("smpl"))
    arrays["extra_vertex_names"] = np.array(["nose"])
    arrays["extra_vertex_ids"] = np.array([0])
    with pytest.raises(ValueError, match="eyes and ears"):
        outfit_parts(arrays)
