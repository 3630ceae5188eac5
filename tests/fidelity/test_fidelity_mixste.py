"""hmrlab's MixSTE loads JinluZhang1126/MixSTE's ``MixSTE2`` state dict and gives its output (fixtures/README.md)."""

import pytest
import torch

from hmrlab.models.authors import from_authors, map_state_dict
from hmrlab.models.mixste import MixSTE

pytestmark = pytest.mark.usefixtures("one_thread")


def test_authors_mixste_output(load_fixture):
    fixture = load_fixture("mixste")
    model = from_authors("mixste", fixture["state_dict"], heads=fixture["config"]["heads"])
    assert isinstance(model, MixSTE) and not model.training
    with torch.no_grad():
        torch.testing.assert_close(model(fixture["input"]), fixture["output"], rtol=0, atol=1e-5)


def test_checkpoint_forms_load_alike(load_fixture):
    """A run.py checkpoint (``model_pos``) saved from DataParallel (``module.``) maps to the same tensors."""
    state = load_fixture("mixste")["state_dict"]
    wrapped = {"epoch": 1, "model_pos": {f"module.{k}": v for k, v in state.items()}}
    plain, mapped = map_state_dict("mixste", state), map_state_dict("mixste", wrapped)
    assert plain.keys() == mapped.keys() and all(torch.equal(plain[k], mapped[k]) for k in plain)


def test_fused_qkv_is_split_q_first(load_fixture):
    state = load_fixture("mixste")["state_dict"]
    mapped = map_state_dict("mixste", state)
    q, k, v = state["STEblocks.1.attn.qkv.weight"].chunk(3)
    assert torch.equal(mapped["spatial_blocks.1.attention.q.weight"], q)
    assert torch.equal(mapped["spatial_blocks.1.attention.v.weight"], v)


def test_the_layer_norm_eps_is_what_differs(load_fixture):
    """With PyTorch's default LayerNorm eps (1e-5, not their 1e-6) the same weights give a slightly different output."""
    fixture = load_fixture("mixste")
    model = from_authors("mixste", fixture["state_dict"], heads=8, norm_eps=1e-5)
    with torch.no_grad():
        difference = (model(fixture["input"]) - fixture["output"]).abs().max()
    assert 1e-7 < difference < 1e-2


def test_sizes_are_checked_against_the_tensors(load_fixture):
    fixture = load_fixture("mixste")
    with pytest.raises(ValueError, match="dim=64 disagrees with the state dict, whose tensors give dim=32"):
        from_authors("mixste", fixture["state_dict"], dim=64)
    with pytest.raises(KeyError, match="unexpected tensor"):
        from_authors("mixste", {**fixture["state_dict"], "extra.weight": torch.zeros(1)})
