"""Time hmrlab.nn.wavelets against PyWavelets on a ResNet-50-sized feature map (a script, not a test).

Run ``python benchmarks/bench_wavelets.py``: for a (16, 256, 56, 56) float32 map it prints the
median time of ``dwt2`` and ``idwt2`` (haar and db2, symmetric mode) for hmrlab on the CPU with
2 torch threads and for ``pywt`` on the same NumPy array, and their ratio (> 1: hmrlab is faster).
"""

from __future__ import annotations

import pywt
import torch
from timing import median_seconds as _median_seconds

from hmrlab.nn import wavelets

SHAPE = (16, 256, 56, 56)
REPEATS = 7



def median_seconds(fn) -> float:
    """`timing.median_seconds` with this benchmark's number of repeats."""
    return _median_seconds(fn, REPEATS)


def main() -> None:
    torch.set_num_threads(2)
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    x_np = x.numpy()
    print(f"feature map {SHAPE} float32, torch {torch.__version__} on CPU with "
          f"{torch.get_num_threads()} threads, pywt {pywt.__version__}; median of {REPEATS} runs")
    print(f"{'transform':<14}{'hmrlab (ms)':>12}{'pywt (ms)':>12}{'pywt/hmrlab':>13}")
    for wavelet in ("haar", "db2"):
        coeffs = wavelets.dwt2(x, wavelet)
        coeffs_np = pywt.dwt2(x_np, wavelet, axes=(-2, -1))
        rows = {
            "dwt2": (lambda: wavelets.dwt2(x, wavelet),
                     lambda: pywt.dwt2(x_np, wavelet, axes=(-2, -1))),
            "idwt2": (lambda: wavelets.idwt2(coeffs, wavelet),
                      lambda: pywt.idwt2(coeffs_np, wavelet, axes=(-2, -1))),
        }
        for name, (ours, theirs) in rows.items():
            with torch.no_grad():
                t_ours = median_seconds(ours)
            t_theirs = median_seconds(theirs)
            print(f"{name + ' ' + wavelet:<14}{1e3 * t_ours:>12.1f}{1e3 * t_theirs:>12.1f}"
                  f"{t_theirs / t_ours:>13.2f}")


if __name__ == "__main__":
    main()
