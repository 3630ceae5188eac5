"""`hmrlab.models.pmce` loads kasvii/PMCE's CoevoBlock (and Pose2Mesh's chain of them) and gives its outputs."""

import pytest
import torch

from hmrlab.models.authors import from_authors
from hmrlab.models.pmce import CoevoBlock, CoevoDecoder

pytestmark = pytest.mark.usefixtures("one_thread")


def test_authors_coevo_block(load_fixture):
    f = load_fixture("pmce")
    block = from_authors("pmce_coevo", f["blocks"][0])
    assert isinstance(block, CoevoBlock)
    with torch.no_grad():
        outputs = block(f["joints"], f["joints"][:, f["vertex_joint"]], f["context"])
    for ours, theirs in zip(outputs, f["block_output"]):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_authors_decoder_chain(load_fixture):
    """Their Pose2Mesh gives every block the input joints; its other tensors (GRU, upsampling) are ignored."""
    f = load_fixture("pmce")
    state = {f"pose_mesh_coevo.coevoblock{i + 1}.{k}": v
             for i, block in enumerate(f["blocks"]) for k, v in block.items()}
    state["pose_mesh_coevo.upsample_conv.weight"] = torch.zeros(1)
    decoder = from_authors("pmce_coevo", state, vertex_joint=f["vertex_joint"])
    assert isinstance(decoder, CoevoDecoder) and len(decoder.blocks) == 2
    with torch.no_grad():
        outputs = decoder(f["joints"], f["context"])
    for ours, theirs in zip(outputs, f["decoder_output"]):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="needs vertex_joint"):
        from_authors("pmce_coevo", state)


def test_published_size_parameter_count():
    """PMCE's CoevoBlock at its sizes (17 joints, 431 vertices, 64 channels, 2048 context): 3,441,414 (README)."""
    assert sum(p.numel() for p in CoevoBlock(17, 431).parameters()) == 3_441_414
