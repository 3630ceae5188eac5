"""Single-pass 2-D DWT and IDWT kernels (numba) for `hmrlab.nn.wavelets` on the CPU.

The torch path of `hmrlab.nn.wavelets` is a filter bank of library calls: extend (a gathered copy),
then a stride-2 convolution for the analysis; a stride-2 *transposed* convolution for the synthesis.
On a (16, 256, 56, 56) map the transposed convolution alone took longer than all of PyWavelets'
inverse: oneDNN runs it as a 4-channel convolution over a zero-stuffed map, most of whose
multiplications are by inserted zeros, and the bands must first be stacked into one tensor. Here
each plane makes one trip through the cache instead:

* `dwt2_planes`: the plane is extended once into an L1-resident buffer (index maps for the boundary
  mode, -1 for a zero), each output row pair is filtered down the rows with the low and high
  decomposition filters, then along the row with stride 2: four bands written once, separably
  (``2 L`` multiply-adds per coefficient and band pair instead of ``L^2``).
* `idwt2_planes`: the **polyphase** form of the synthesis. Upsampling by 2 then filtering with g
  splits into two phases, ``y[2m + r] = sum_u g[2 (J - 1 - u) + r] c[m + u]`` with ``J = L / 2``
  taps each and no inserted zeros (with PyWavelets' "valid" trim, both phases start at offset 0);
  applied down the rows (phase ``r_y``, low and high families) and then along them (``r_x``), the
  two output rows of each band row are written interleaved, directly, once.

Planes are the parallel tasks (``prange``) when there are two threads or more, else the serial twin
runs in the calling thread. `hmrlab.nn.wavelets` uses these only for CPU float32/float64 tensors
that need no gradient, through `hmrlab.nn.numba_backend`; the tests compare them with PyWavelets.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["dwt2_planes", "idwt2_planes", "polyphase", "self_check"]


@njit(cache=True)
def _dwt2_plane(m, x, rows, cols, lo, hi, ca, ch, cv, cd):  # pragma: no cover - compiled
    """Plane m: x (M, H, W) -> bands ca, ch, cv, cd (M, NH, NW); rows (2 NH + L - 2,) and cols the
    source index of each extended row / column (-1: zero); lo, hi the correlation taps."""
    taps = lo.shape[0]
    nh, nw = ca.shape[1], ca.shape[2]
    ext_w = cols.shape[0]
    plane = x[m]
    ext = np.empty((rows.shape[0], ext_w), ca.dtype)
    for r in range(rows.shape[0]):
        source = rows[r]
        if source < 0:
            ext[r, :] = 0
        else:
            row = plane[source]
            for c in range(ext_w):
                s = cols[c]
                ext[r, c] = row[s] if s >= 0 else 0
    low = np.empty(ext_w, ca.dtype)
    high = np.empty(ext_w, ca.dtype)
    for i in range(nh):
        low[:] = 0
        high[:] = 0
        for u in range(taps):
            row = ext[2 * i + u]
            a, b = lo[u], hi[u]
            for c in range(ext_w):
                low[c] += a * row[c]
                high[c] += b * row[c]
        a_row, h_row, v_row, d_row = ca[m, i], ch[m, i], cv[m, i], cd[m, i]
        for j in range(nw):
            s_ll = low[2 * j] * lo[0]
            s_lh = low[2 * j] * hi[0]
            s_hl = high[2 * j] * lo[0]
            s_hh = high[2 * j] * hi[0]
            for v in range(1, taps):
                s_ll += low[2 * j + v] * lo[v]
                s_lh += low[2 * j + v] * hi[v]
                s_hl += high[2 * j + v] * lo[v]
                s_hh += high[2 * j + v] * hi[v]
            a_row[j] = s_ll
            h_row[j] = s_hl
            v_row[j] = s_lh
            d_row[j] = s_hh


@njit(parallel=True, cache=True)
def _dwt2_parallel(x, rows, cols, lo, hi, ca, ch, cv, cd):  # pragma: no cover - compiled
    for m in prange(x.shape[0]):
        _dwt2_plane(m, x, rows, cols, lo, hi, ca, ch, cv, cd)


@njit(cache=True)
def _dwt2_serial(x, rows, cols, lo, hi, ca, ch, cv, cd):  # pragma: no cover - compiled
    for m in range(x.shape[0]):
        _dwt2_plane(m, x, rows, cols, lo, hi, ca, ch, cv, cd)


def dwt2_planes(x, rows, cols, lo, hi, ca, ch, cv, cd, parallel: bool = True) -> None:
    """One 2-D DWT level of every plane of x (M, H, W) into the bands ca, ch, cv, cd (M, NH, NW).

    rows (2 NH + L - 2,) int64 and cols (2 NW + L - 2,): the source row / column of each position of
    the extended plane (-1 for a zero; `hmrlab.nn.wavelets.analysis_padding` and
    `extension_index`); lo, hi (L,): the decomposition filters reversed (correlation taps).
    """
    (_dwt2_parallel if parallel else _dwt2_serial)(x, rows, cols, lo, hi, ca, ch, cv, cd)


def polyphase(rec_lo: np.ndarray, rec_hi: np.ndarray) -> np.ndarray:
    """The reconstruction filters' phases (2, 2, J): ``[family, r, u] = g[2 (J - 1 - u) + r]`` for
    g = rec_lo (family 0) and rec_hi (family 1), J = L / 2 (L even, as for every discrete wavelet)."""
    taps = len(rec_lo) // 2
    bank = np.empty((2, 2, taps), rec_lo.dtype)
    for family, g in enumerate((rec_lo, rec_hi)):
        for r in range(2):
            for u in range(taps):
                bank[family, r, u] = g[2 * (taps - 1 - u) + r]
    return bank


@njit(cache=True)
def _idwt2_plane(m, ca, ch, cv, cd, phases, crop_y, crop_x, out):  # pragma: no cover - compiled
    """Plane m of bands (M, NH, NW) each -> out (M, OH, OW): rows ``2 h + r_y - crop_y`` of the
    polyphase synthesis that fall in [0, OH), likewise columns."""
    taps = phases.shape[2]
    nh, nw = ca.shape[1], ca.shape[2]
    oh, ow = out.shape[1], out.shape[2]
    full_w = 2 * (nw - taps + 1)
    low = np.empty((2, nw), out.dtype)  # rows done, column-low family (from cA, cH)
    high = np.empty((2, nw), out.dtype)  # rows done, column-high family (from cV, cD)
    half_w = nw - taps + 1
    line = np.empty(full_w, out.dtype)
    even = np.empty(half_w, out.dtype)
    odd = np.empty(half_w, out.dtype)
    for h in range(nh - taps + 1):
        low[:] = 0
        high[:] = 0
        for u in range(taps):
            a, hh, v, d = ca[m, h + u], ch[m, h + u], cv[m, h + u], cd[m, h + u]
            for r in range(2):
                f_lo, f_hi = phases[0, r, u], phases[1, r, u]
                lo_row, hi_row = low[r], high[r]
                for n in range(nw):
                    lo_row[n] += f_lo * a[n] + f_hi * hh[n]
                    hi_row[n] += f_lo * v[n] + f_hi * d[n]
        for r in range(2):
            y = 2 * h + r - crop_y
            if y < 0 or y >= oh:
                continue
            lo_row, hi_row = low[r], high[r]
            # Along the row: both column phases as contiguous (vectorized) sums, then interleaved.
            even[:] = 0
            odd[:] = 0
            for u in range(taps):
                e_lo, e_hi, o_lo, o_hi = phases[0, 0, u], phases[1, 0, u], phases[0, 1, u], phases[1, 1, u]
                for k in range(half_w):
                    even[k] += e_lo * lo_row[k + u] + e_hi * hi_row[k + u]
                    odd[k] += o_lo * lo_row[k + u] + o_hi * hi_row[k + u]
            dst = out[m, y]
            if crop_x == 0 and ow == full_w:
                for k in range(half_w):
                    dst[2 * k] = even[k]
                    dst[2 * k + 1] = odd[k]
            else:
                for k in range(half_w):
                    line[2 * k] = even[k]
                    line[2 * k + 1] = odd[k]
                for x in range(ow):
                    dst[x] = line[x + crop_x]


@njit(parallel=True, cache=True)
def _idwt2_parallel(ca, ch, cv, cd, phases, crop_y, crop_x, out):  # pragma: no cover - compiled
    for m in prange(out.shape[0]):
        _idwt2_plane(m, ca, ch, cv, cd, phases, crop_y, crop_x, out)


@njit(cache=True)
def _idwt2_serial(ca, ch, cv, cd, phases, crop_y, crop_x, out):  # pragma: no cover - compiled
    for m in range(out.shape[0]):
        _idwt2_plane(m, ca, ch, cv, cd, phases, crop_y, crop_x, out)


def idwt2_planes(ca, ch, cv, cd, phases, crop_y, crop_x, out, parallel: bool = True) -> None:
    """One inverse 2-D DWT level of every plane: bands (M, NH, NW) -> out (M, OH, OW).

    phases (2, 2, J) from `polyphase`; output row y is row ``y + crop_y`` of the ``2 (NH - J + 1)``
    rows the polyphase synthesis gives (PyWavelets' valid part), likewise columns; OH, OW <= those
    lengths minus the crops.
    """
    (_idwt2_parallel if parallel else _idwt2_serial)(ca, ch, cv, cd, phases, crop_y, crop_x, out)


def self_check() -> None:
    """Compile the kernels (serial, parallel) and check a Haar round trip of a 4x4 plane."""
    x = np.arange(16.0, dtype=np.float32).reshape(1, 4, 4)
    s = np.float32(np.sqrt(0.5))
    lo, hi = np.array([s, s], np.float32), np.array([s, -s], np.float32)  # Haar taps, reversed
    index = np.arange(4, dtype=np.int64)
    phases = polyphase(np.array([s, s], np.float32), np.array([s, -s], np.float32))
    for parallel in (False, True):
        bands = np.empty((4, 1, 2, 2), np.float32)
        dwt2_planes(x, index, index, lo, hi, *bands, parallel)
        back = np.empty((1, 4, 4), np.float32)
        idwt2_planes(*bands, phases, 0, 0, back, parallel)
        if not np.allclose(back, x, atol=1e-5) or not np.isclose(bands[0, 0, 0, 0], 5.0):
            raise RuntimeError("the compiled wavelet kernels gave wrong results on a 4x4 check")
