"""`MixSTE.check_input`: the clips a lifting model takes, and what it refuses instead of converting."""

from __future__ import annotations

import pytest
import torch

from hmrlab.models.mixste import MixSTE
from hmrlab.models.rtpca import RTPCA


@pytest.fixture(scope="module")
def model() -> MixSTE:
    return MixSTE(dim=16, depth=1, heads=2, frames=9).eval()


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64, torch.int64, torch.bool, torch.complex64])
def test_other_dtypes_are_refused_not_converted(model, dtype):
    with pytest.raises(ValueError, match=rf"x (must hold real floating-point|has dtype {dtype})"):
        model(torch.zeros(2, 9, 17, 2, dtype=dtype))


def test_empty_batch_is_refused(model):
    with pytest.raises(ValueError, match=r"x has batch size B = 0 \(shape \(0, 9, 17, 2\)\)"):
        model(torch.zeros(0, 9, 17, 2))


def test_autocast_takes_other_floating_dtypes():
    x = torch.randn(2, 9, 17, 2)
    for model in (MixSTE(dim=16, depth=1, heads=2, frames=9), RTPCA(dim=16, depth=1, heads=2, frames=9)):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            out = model.eval()(x.to(torch.bfloat16))
        assert out.shape == (2, 9, 17, 3) and torch.isfinite(out).all()
