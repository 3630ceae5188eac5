"""Time hmrlab.nn.wavelets against PyWavelets (and ptwt) on a ResNet-50-sized feature map (a script, not a test).

Run ``python benchmarks/bench_wavelets.py`` from the repository root: for a (16, 256, 56, 56) float32
map (the LIFD-Extractor's size) it prints the median time of ``dwt2`` and ``idwt2`` (haar, db2, sym4,
symmetric mode) for hmrlab on the CPU and for ``pywt`` on the same NumPy array, and their ratio
(> 1: hmrlab is faster), on 1 and 2 torch threads (pywt runs on one). Runs alternate between ours and
the reference so that a change in the machine's load hits both. ``ptwt`` (PyTorch Wavelet Toolbox,
also torch) is timed too where it is installed (it is no dependency: ``pip install ptwt``). ``rows``
gives the same comparisons to ``python -m benchmarks`` (ratio hmrlab / reference there), at the
runner's threads, and at 2 threads as well when the runner uses 1 (the issue's setting).
"""

from __future__ import annotations

import statistics

import pywt
import torch
from timing import Row, paired_seconds, time_row

from hmrlab.nn import wavelets

SHAPE = (16, 256, 56, 56)
QUICK_SHAPE = (2, 16, 32, 32)
WAVELETS = ("haar", "db2", "sym4")
QUICK_WAVELETS = ("haar", "db2")
REPEATS = 7

try:  # optional: the PyTorch Wavelet Toolbox, if installed
    import ptwt
except ImportError:  # pragma: no cover - depends on the environment
    ptwt = None


def measure(shape: tuple[int, ...], names: tuple[str, ...], repeats: int, with_ptwt: bool = True
            ) -> list[tuple[str, str, float, float]]:
    """(transform, reference, hmrlab seconds, reference seconds): medians of interleaved runs of
    dwt2 and idwt2 on one random map, against pywt and (if installed and asked) ptwt."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    x_np = x.numpy()
    timings = []
    for wavelet in names:
        coeffs = wavelets.dwt2(x, wavelet)
        coeffs_np = pywt.dwt2(x_np, wavelet, axes=(-2, -1))
        references = {"pywt": (lambda: pywt.dwt2(x_np, wavelet, axes=(-2, -1)),
                               lambda: pywt.idwt2(coeffs_np, wavelet, axes=(-2, -1)))}
        if ptwt is not None and with_ptwt:
            coeffs_pt = ptwt.wavedec2(x, wavelet, level=1, mode="symmetric")
            references["ptwt"] = (lambda: ptwt.wavedec2(x, wavelet, level=1, mode="symmetric"),
                                  lambda: ptwt.waverec2(coeffs_pt, wavelet))
        ours = (lambda: wavelets.dwt2(x, wavelet), lambda: wavelets.idwt2(coeffs, wavelet))
        for reference, theirs in references.items():
            for k, name in enumerate(("dwt2", "idwt2")):
                with torch.no_grad():
                    times = paired_seconds({"ours": ours[k], "theirs": theirs[k]}, repeats)
                timings.append((f"{name} {wavelet}", reference, statistics.median(times["ours"]),
                                statistics.median(times["theirs"])))
    return timings


def rows(quick: bool) -> list[Row]:
    shape, names = (QUICK_SHAPE, QUICK_WAVELETS) if quick else (SHAPE, WAVELETS)
    repeats = 3 if quick else REPEATS
    table = [time_row(f"{name}, {tuple(shape)} float32", ours, reference, theirs)
             for name, reference, ours, theirs in measure(shape, names, repeats, with_ptwt=not quick)]
    threads = torch.get_num_threads()
    if not quick and threads == 1:
        torch.set_num_threads(2)
        try:
            table += [time_row(f"{name}, {tuple(shape)} float32", ours, reference, theirs)
                      for name, reference, ours, theirs in measure(shape, names, repeats, with_ptwt=False)]
        finally:
            torch.set_num_threads(threads)
    return table


def main() -> None:
    print(f"feature map {SHAPE} float32, torch {torch.__version__} on CPU, pywt {pywt.__version__}"
          f"{'' if ptwt is None else ', ptwt ' + ptwt.__version__ if hasattr(ptwt, '__version__') else ', ptwt'}; "
          f"median of {REPEATS} interleaved runs")
    print(f"{'threads':>7}  {'transform':<12}{'reference':<10}{'hmrlab (ms)':>12}{'ref (ms)':>10}{'ref/hmrlab':>12}")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for name, reference, t_ours, t_theirs in measure(SHAPE, WAVELETS, REPEATS):
            print(f"{threads:>7}  {name:<12}{reference:<10}{1e3 * t_ours:>12.1f}{1e3 * t_theirs:>10.1f}"
                  f"{t_theirs / t_ours:>12.2f}")


if __name__ == "__main__":
    main()
