"""Shared by the fidelity tests: the fixtures made by running each authors' repository (fixtures/README.md)."""

from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def load_fixture():
    """``load_fixture(name)``: ``fixtures/<name>.pt`` read with ``weights_only=True`` (tensors, dicts, numbers)."""

    def load(name: str) -> dict:
        path = FIXTURES / f"{name}.pt"
        if not path.exists():
            pytest.fail(f"missing fixture {path}; fixtures/README.md says how it was made")
        return torch.load(path, weights_only=True)

    return load
