"""`rle_loss(form="authors")` and RLE's flow equal Jeff-sjtu/res-loglikelihood-regression's on the same tensors."""

import pytest
import torch

from hmrlab.models.authors import from_authors
from hmrlab.nn.rle import rle_loss

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("case", ["rle2d", "rle3d"])
def test_authors_flow_and_loss(case, load_fixture):
    fixture = load_fixture("rle")[case]
    flow = from_authors("rle_flow", fixture["flow"])
    u = (fixture["mu"] - fixture["target"]) / fixture["sigma"]
    torch.testing.assert_close(flow.log_prob(u), fixture["log_phi"], rtol=0, atol=1e-5)
    args = fixture["mu"], fixture["sigma"], fixture["target"], flow
    loss = rle_loss(*args, weight=fixture["weight"], form="authors")
    torch.testing.assert_close(loss, fixture["loss"], rtol=1e-6, atol=1e-5)
    # The paper's Eq. 7 (our default) is another number on the same tensors.
    assert not torch.isclose(rle_loss(*args, weight=fixture["weight"]), fixture["loss"])


def test_authors_masks_keep_the_last_coordinates_first(load_fixture):
    assert from_authors("rle_flow", load_fixture("rle")["rle3d"]["flow"]).masks[0].tolist() == [0.0, 0.0, 1.0]


def test_authors_form_has_its_own_q(load_fixture):
    fixture = load_fixture("rle")["rle2d"]
    flow = from_authors("rle_flow", fixture["flow"])
    with pytest.raises(ValueError, match="form='authors' has its own"):
        rle_loss(fixture["mu"], fixture["sigma"], fixture["target"], flow, q="gaussian", form="authors")
