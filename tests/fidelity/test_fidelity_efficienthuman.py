"""EfficientHuman's MGFENet("big_7x7") and RTMCCHead load into `EfficientHumanAuthors` and give their outputs.

Their 9.6 M weights are not stored: the fixture has their state dicts' keys and shapes and their outputs
on weights and an image built by `formula` (fixtures/README.md); the test rebuilds both.
"""

import sys
from pathlib import Path

import pytest
import torch

from hmrlab.models.authors import from_authors
from hmrlab.nn.mgfenet import MGFENet, MGFENetAuthors

sys.path.insert(0, str(Path(__file__).parent))
from formula import formula_image, formula_tensors  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def authors_state(fixture: dict) -> dict:
    backbone, head = formula_tensors(fixture["backbone_keys"], 1), formula_tensors(fixture["head_keys"], 2)
    return {**{f"preact.{k}": v for k, v in backbone.items()}, **{f"pose_head.{k}": v for k, v in head.items()},
            "fc1.weight": torch.zeros(1)}  # the rest of their model is ignored


def test_authors_backbone_and_head(load_fixture):
    fixture = load_fixture("efficienthuman")
    model = from_authors("efficienthuman", authors_state(fixture))
    image = formula_image(1, 256)
    with torch.no_grad():
        features = model.backbone.forward_features(image, ["stride32"])["stride32"]
        out = model.head(features)
    torch.testing.assert_close(features, fixture["features"], rtol=1e-4, atol=1e-5)
    for key in ("coords", "sigma", "keypoint_features"):
        torch.testing.assert_close(out[key], fixture[key], rtol=1e-4, atol=1e-5)


def test_parameter_counts():
    """Their MGFENet has 4,664,423 parameters (the paper's 4.66 M), their head 4,960,610 (README)."""
    assert sum(p.numel() for p in MGFENetAuthors().parameters()) == 4_664_423
    assert sum(p.numel() for p in MGFENet(late_downsample=True).parameters()) == 4_693_149
