"""Headless defaults (quick mode, offscreen rendering) for every test and notebook kernel."""

import pytest
import torch

from tools.notebook_runner import apply_headless_env

apply_headless_env()


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tests on one torch thread: on tiny tensors a second thread costs more than it
    saves, a lot more on a busy two-core machine. Use with ``pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
