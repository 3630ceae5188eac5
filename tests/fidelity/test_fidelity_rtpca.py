"""`RTPCAAuthors` loads hbing-l/RTPCA's ``MixSTE2`` state dict and gives its output (fixtures/README.md)."""

import pytest
import torch

from hmrlab.models.authors import from_authors
from hmrlab.models.rtpca import RTPCAAuthors

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", ["rtpca", "rtpca_t27"])
def test_authors_rtpca_output(name, load_fixture):
    """At their T = 243 (code as released) and at T = 27 (their code with 243 replaced by 27)."""
    fixture = load_fixture(name)
    model = from_authors("rtpca", fixture["state_dict"], heads=fixture["config"]["heads"])
    assert isinstance(model, RTPCAAuthors) and model.frames == fixture["config"]["frames"]
    with torch.no_grad():
        torch.testing.assert_close(model(fixture["input"]), fixture["output"], rtol=0, atol=1e-5)


def test_unused_spatial_pyramids_are_dropped_and_change_nothing(load_fixture):
    fixture = load_fixture("rtpca")
    state = dict(fixture["state_dict"])
    unused = [k for k in state if k.startswith("STEblocks.") and ".attn.up" in k]
    assert unused
    for key in unused:
        state[key] = torch.full_like(state[key], 7.0)
    model = from_authors("rtpca", state)
    with torch.no_grad():
        torch.testing.assert_close(model(fixture["input"]), fixture["output"], rtol=0, atol=1e-5)


def test_published_size_parameter_count():
    """The authors' 33,910,627 parameters at dim 512, depth 8, 243 frames, less 63,408 unused (fixtures/README.md)."""
    model = RTPCAAuthors()
    assert sum(p.numel() for p in model.parameters()) == 33_910_627 - 63_408
    assert [up.kernel_size[0] for up in model.temporal_blocks[0].attention.pyramid.up] == [2, 3, 3]


def test_clips_must_have_the_model_frames():
    model = RTPCAAuthors(dim=16, depth=2, frames=27).eval()
    assert model(torch.randn(1, 27, 17, 2)).shape == (1, 27, 17, 3)
    with pytest.raises(ValueError, match="exactly frames = 27"):
        model(torch.randn(1, 26, 17, 2))
    with pytest.raises(ValueError, match="T >= ratio\\*\\*depth = 8"):
        RTPCAAuthors(dim=16, depth=2, frames=7)
