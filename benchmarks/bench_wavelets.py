"""Time hmrlab.nn.wavelets against PyWavelets on a ResNet-50-sized feature map (a script, not a test).

Run ``python benchmarks/bench_wavelets.py`` from the repository root: for a (16, 256, 56, 56) float32
map it prints the median time of ``dwt2`` and ``idwt2`` (haar and db2, symmetric mode) for hmrlab on
the CPU with 2 torch threads and for ``pywt`` on the same NumPy array, and their ratio (> 1: hmrlab is
faster). ``rows`` gives the same comparisons to ``python -m benchmarks`` (ratio hmrlab / pywt there).
"""

from __future__ import annotations

import pywt
import torch
from timing import Row, median_seconds, time_row

from hmrlab.nn import wavelets

SHAPE = (16, 256, 56, 56)
QUICK_SHAPE = (2, 16, 32, 32)
REPEATS = 7


def measure(shape: tuple[int, ...], repeats: int) -> list[tuple[str, float, float]]:
    """(transform, hmrlab seconds, pywt seconds) for dwt2 and idwt2 with haar and db2 on one random map."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    x_np = x.numpy()
    timings = []
    for wavelet in ("haar", "db2"):
        coeffs = wavelets.dwt2(x, wavelet)
        coeffs_np = pywt.dwt2(x_np, wavelet, axes=(-2, -1))
        pairs = {
            "dwt2": (lambda: wavelets.dwt2(x, wavelet),
                     lambda: pywt.dwt2(x_np, wavelet, axes=(-2, -1))),
            "idwt2": (lambda: wavelets.idwt2(coeffs, wavelet),
                      lambda: pywt.idwt2(coeffs_np, wavelet, axes=(-2, -1))),
        }
        for name, (ours, theirs) in pairs.items():
            with torch.no_grad():
                t_ours = median_seconds(ours, repeats)
            timings.append((f"{name} {wavelet}", t_ours, median_seconds(theirs, repeats)))
    return timings


def rows(quick: bool) -> list[Row]:
    shape = QUICK_SHAPE if quick else SHAPE
    return [time_row(f"{name}, {tuple(shape)} float32", ours, "pywt", theirs)
            for name, ours, theirs in measure(shape, 3 if quick else REPEATS)]


def main() -> None:
    torch.set_num_threads(2)
    print(f"feature map {SHAPE} float32, torch {torch.__version__} on CPU with "
          f"{torch.get_num_threads()} threads, pywt {pywt.__version__}; median of {REPEATS} runs")
    print(f"{'transform':<14}{'hmrlab (ms)':>12}{'pywt (ms)':>12}{'pywt/hmrlab':>13}")
    for name, t_ours, t_theirs in measure(SHAPE, REPEATS):
        print(f"{name:<14}{1e3 * t_ours:>12.1f}{1e3 * t_theirs:>12.1f}{t_theirs / t_ours:>13.2f}")


if __name__ == "__main__":
    main()
