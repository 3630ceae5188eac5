"""Where hmrlab's numba kernels come from: one loader, one switch, one warning.

`hmrlab.nn.xnor_kernels` (XNOR-popcount convolutions) and `hmrlab.nn.wavelet_kernels` (single-pass
2-D DWT/IDWT) are compiled by numba on first use and cached on disk. `load` imports such a module
and runs its ``self_check()`` once; where numba is missing or cannot compile on this machine it
returns None after a one-time `RuntimeWarning`, and the caller runs its pure-torch path instead
(same results). ``HMRLAB_NUMBA=0`` chooses the torch paths on purpose, without a warning.
"""

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType

__all__ = ["load", "enabled", "reset", "sync_threads"]

_MODULES: dict[str, ModuleType | None] = {}


def enabled() -> bool:
    """False when ``HMRLAB_NUMBA=0`` asks for the pure-torch paths."""
    return os.environ.get("HMRLAB_NUMBA", "1") != "0"


def load(name: str) -> ModuleType | None:
    """The kernel module ``hmrlab.nn.<name>`` once imported and self-checked, else None (warned once)."""
    if not enabled():
        return None
    if name not in _MODULES:
        _MODULES[name] = None
        try:
            module = importlib.import_module(f"hmrlab.nn.{name}")
            module.self_check()
            _MODULES[name] = module
        except Exception as error:  # numba missing, LLVM failing, or a wrong result on this machine
            warnings.warn(
                f"hmrlab.nn.{name} is unavailable ({type(error).__name__}: {error}); using the pure-torch "
                "path instead (same results, slower). Install numba (pip install 'numba>=0.60') for the "
                "compiled kernels, or set HMRLAB_NUMBA=0 to choose the torch path without this warning.",
                RuntimeWarning, stacklevel=3,
            )
    return _MODULES[name]


def reset() -> None:
    """Forget what `load` found (tests use it to try again after changing the environment)."""
    _MODULES.clear()


def sync_threads(threads: int) -> None:
    """Run numba's parallel kernels on `threads` threads (torch's count, so that timings compare like
    with like), at most the pool numba started with (``NUMBA_NUM_THREADS``, the CPU count)."""
    import numba

    threads = max(1, min(threads, numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != threads:
        numba.set_num_threads(threads)
