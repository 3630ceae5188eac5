"""The discrete wavelet transform (DWT) in torch: batched, differentiable, and equal to PyWavelets.

The public functions have PyWavelets' names, arguments and coefficient order, so code can switch
between ``pywt`` (NumPy) and ``hmrlab.nn.wavelets`` (torch) line for line:

=========================================  ====================================================
``dwt(x, w)`` / ``idwt(cA, cD, w)``        one level along ``axis`` (default the last)
``dwt2(x, w)`` / ``idwt2(coeffs, w)``      one level along ``axes`` (default the last two)
``wavedec`` / ``waverec``                  ``[cAn, cDn, ..., cD1]``
``wavedec2`` / ``waverec2``                ``[cAn, (cHn, cVn, cDn), ..., (cH1, cV1, cD1)]``
=========================================  ====================================================

Any leading dimensions are batch dimensions: a ResNet feature map ``(B, C, H, W)`` is transformed
channel by channel. The wavelet is a name (``"haar"``, ``"db2"``, ``"sym4"``, ``"bior2.2"``, any of
``pywt.wavelist(kind="discrete")``) or a ``pywt.Wavelet``; its four filters come from PyWavelets.

The transform is four steps, one function each, as in the filter-bank picture of S. Mallat, "A
theory for multiresolution signal decomposition: the wavelet representation", IEEE TPAMI 1989:

1. ``wavelet_filters``: the 1-D filters ``dec_lo, dec_hi, rec_lo, rec_hi``, and for 2-D their outer
   products (the four 2-D wavelets are separable).
2. ``extend``: extend the signal past its ends by the boundary ``mode``.
3. ``analysis_filter_bank``: convolve with the decomposition filters and keep every other sample,
   i.e. one convolution of stride 2.
4. ``synthesis_filter_bank``: the inverse, a transposed convolution of stride 2 with the
   reconstruction filters (upsample by inserting zeros, then convolve).

Speed: for CPU tensors that need no gradient, ``dwt2`` and ``idwt2`` (and so ``wavedec2``,
``waverec2``, ``DWT2d``, ``IDWT2d``) run the single-pass numba kernels of
`hmrlab.nn.wavelet_kernels` instead of steps 2-4: the analysis extends and filters each plane in
cache, the synthesis uses the **polyphase** form of step 4 (two phases of L/2 taps, no inserted
zeros, output rows written interleaved once), where the transposed convolution multiplied mostly
by inserted zeros and needed the bands stacked first. Same numbers (to float rounding); the filter
bank above stays the reference, the differentiable path and the one for other devices.

Conventions (all PyWavelets'):

* Filters are applied by *convolution*, ``c[k] = sum_j h[j] x[2k + 1 - j]``; torch's ``conv1d`` is a
  correlation, so the decomposition filters are flipped before use. For Haar,
  ``dec_lo = [1, 1]/sqrt(2)`` and ``dec_hi = [-1, 1]/sqrt(2)``, hence
  ``cA[k] = (x[2k] + x[2k+1])/sqrt(2)`` and ``cD[k] = (x[2k] - x[2k+1])/sqrt(2)`` (first minus
  second): ``[4, 6, 8, 10]`` gives ``cA = [10, 18]/sqrt(2)``, ``cD = [-2, -2]/sqrt(2)``.
* Lengths (``dwt_coeff_len``): ``floor((n + L - 1)/2)`` coefficients for a signal of length ``n``
  and filters of length ``L``, except ``"periodization"``: ``ceil(n/2)``. ``idwt`` returns
  ``2 N - L + 2`` samples (``2 N`` for periodization) from ``N`` coefficients, i.e. ``n + 1`` for an
  odd ``n``; ``waverec``/``waverec2`` drop that extra sample between levels, as PyWavelets does.
* 2-D subbands, for ``axes = (-2, -1)``: ``cH`` is high-pass along axis -2 (down the image) and
  low-pass along axis -1 (across it), so it responds to horizontal edges; ``cV`` is the reverse
  (vertical edges), ``cD`` high-pass along both.

Boundary modes: ``zero``, ``constant`` (repeat the edge sample), ``symmetric`` (mirror, edge
repeated: ``... x1 x0 | x0 x1 ...``), ``reflect`` (mirror about the edge sample:
``... x2 x1 | x0 x1 ...``), ``periodic`` and ``periodization`` (periodic, with the smallest output:
an odd signal is first made even by repeating its last sample; for an even length and an orthogonal
wavelet the transform is then an orthogonal matrix, so it preserves energy: Parseval).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pywt
import torch
import torch.nn.functional as F
from pywt import dwt_max_level
from torch import Tensor, nn
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

from hmrlab.nn import numba_backend

__all__ = [
    "MODES",
    "as_wavelet",
    "wavelet_filters",
    "dwt_coeff_len",
    "dwt_max_level",
    "extend",
    "analysis_filter_bank",
    "synthesis_filter_bank",
    "dwt",
    "idwt",
    "dwt2",
    "idwt2",
    "wavedec",
    "waverec",
    "wavedec2",
    "waverec2",
    "DWT2d",
    "IDWT2d",
]

MODES = ("zero", "constant", "symmetric", "reflect", "periodic", "periodization")

Coeffs2 = tuple[Tensor, tuple[Tensor, Tensor, Tensor]]


def as_wavelet(wavelet: str | pywt.Wavelet) -> pywt.Wavelet:
    """Return the ``pywt.Wavelet`` named `wavelet` (or `wavelet` itself if it already is one)."""
    if isinstance(wavelet, pywt.Wavelet):
        return wavelet
    if not isinstance(wavelet, str) or wavelet not in pywt.wavelist(kind="discrete"):
        raise ValueError(
            f"unknown discrete wavelet {wavelet!r}; use a name such as 'haar', 'db2', 'db4', "
            "'sym4', 'coif1' or 'bior2.2' (all names: pywt.wavelist(kind='discrete')) "
            "or a pywt.Wavelet"
        )
    return pywt.Wavelet(wavelet)


def check_mode(mode: str) -> None:
    """Raise `ValueError` unless `mode` is one of `MODES`."""
    if mode not in MODES:
        raise ValueError(f"unknown boundary mode {mode!r}; supported modes: {', '.join(MODES)}")


def wavelet_filters(wavelet: str | pywt.Wavelet, ndim: int = 1) -> tuple[Tensor, Tensor]:
    """Decomposition and reconstruction filters of an `ndim`-D DWT (ndim = 1 or 2), in float64.

    Returns ``(dec, rec)``, each ``(K, 1, L)`` for 1-D (K = 2: low, high) or ``(K, 1, L, L)`` for
    2-D (K = 4: the outer products lo*lo, hi*lo, lo*hi, hi*hi, rows first, i.e. the filters of
    cA, cH, cV, cD). They are PyWavelets' ``dec_lo, dec_hi, rec_lo, rec_hi`` as they are (to be
    applied by convolution, not correlation); ``L`` is the wavelet's ``dec_len``.
    """
    wavelet = as_wavelet(wavelet)
    banks = []
    for lo, hi in (wavelet.filter_bank[:2], wavelet.filter_bank[2:]):
        lo, hi = (torch.tensor(f, dtype=torch.float64) for f in (lo, hi))
        if ndim == 1:
            bank = torch.stack([lo, hi])
        elif ndim == 2:
            bank = torch.stack([lo.outer(lo), hi.outer(lo), lo.outer(hi), hi.outer(hi)])
        else:
            raise ValueError(f"ndim must be 1 or 2; got {ndim}")
        banks.append(bank.unsqueeze(1))
    return banks[0], banks[1]


def dwt_coeff_len(data_len: int, filter_len: int, mode: str) -> int:
    """Number of coefficients (in cA, and in cD) of one DWT level; equals ``pywt.dwt_coeff_len``."""
    check_mode(mode)
    if mode == "periodization":
        return (data_len + 1) // 2
    return (data_len + filter_len - 1) // 2


def extension_index(n: int, before: int, after: int, mode: str) -> Tensor:
    """Source sample of each position of a length-`n` signal extended by `mode`, (before+n+after,).

    Position ``i`` of the extended signal holds sample ``index[i]`` of the original. The formulas
    are periodic, so they hold however long the extension (PyWavelets allows any signal length).
    """
    i = torch.arange(-before, n + after)
    if mode == "constant":
        return i.clamp(0, n - 1)
    if mode == "symmetric":  # period 2n: x0 ... x(n-1) x(n-1) ... x0
        i = i.remainder(2 * n)
        return torch.where(i < n, i, 2 * n - 1 - i)
    if mode == "reflect":  # period 2n - 2: x0 ... x(n-1) x(n-2) ... x1
        i = i.remainder(2 * n - 2)
        return torch.where(i < n, i, 2 * n - 2 - i)
    if mode == "periodic":
        return i.remainder(n)
    if mode == "periodization":  # odd n: periodic over n + 1 samples, the last one repeated
        return i.remainder(n + n % 2).clamp(max=n - 1)
    raise ValueError(f"extension_index has no rule for mode {mode!r}; 'zero' pads with zeros")


def extend(x: Tensor, pads: Sequence[tuple[int, int]], mode: str) -> Tensor:
    """Extend the last ``len(pads)`` dims of `x` by boundary `mode`, ``pads[d] = (before, after)``.

    ``(..., n_1, ..., n_d) -> (..., before_1 + n_1 + after_1, ...)``; the modes are described in
    the module docstring. ``extend(x, [(2, 3)], "symmetric")`` pads a signal ``(..., n)``,
    ``extend(x, [(2, 3), (2, 3)], "symmetric")`` an image ``(..., H, W)``. Equal to ``pywt.pad``,
    except that for periodization of an odd length the repeated sample counts in `after` here.
    """
    check_mode(mode)
    if all(p == 0 for pad in pads for p in pad):
        return x
    ndim = len(pads)
    sizes = x.shape[x.dim() - ndim :]
    if mode == "zero":
        # F.pad lists (before, after) pairs from the last dimension backwards.
        return F.pad(x, [p for pad in reversed(pads) for p in pad])
    if mode == "reflect" and min(sizes) < 2:
        raise ValueError(f"mode 'reflect' needs at least 2 samples along each axis; got shape "
                         f"{tuple(sizes)}; use 'symmetric' for shorter signals")
    index = torch.zeros((), dtype=torch.long)
    for n, (before, after) in zip(sizes, pads):
        index = index[..., None] * n + extension_index(n, before, after, mode)
    # One gather from a 2-D view (batch, samples): a single pass over memory, and on CPU 4x faster
    # than gathering from the 3-D view (batch, 1, samples) or one dimension at a time.
    flat = x.reshape(-1, math.prod(sizes)).index_select(1, index.flatten().to(x.device))
    return flat.reshape(*x.shape[: x.dim() - ndim], *index.shape)


def analysis_padding(data_len: int, filter_len: int, mode: str) -> tuple[int, int]:
    """Samples to add before and after a signal so that a stride-2 correlation gives the DWT.

    PyWavelets computes ``c[k] = sum_j h[j] x[2k + 1 - j]`` over the extended signal: the first
    output reaches back to ``x[2 - L]`` and the last forward to ``x[n + L - 2]``. Periodization
    instead centres the filter, ``c[k] = sum_j h[j] x[2k + L/2 - j]``, on the signal made even.
    A stride-2 correlation of ``P`` samples with ``L`` taps gives ``(P - L) // 2 + 1`` outputs; the
    padding after the signal is whatever makes that exactly ``dwt_coeff_len``.
    """
    before = filter_len // 2 - 1 if mode == "periodization" else filter_len - 2
    padded_len = 2 * dwt_coeff_len(data_len, filter_len, mode) + filter_len - 2
    return before, padded_len - data_len - before


def analysis_filter_bank(x: Tensor, dec: Tensor, mode: str) -> Tensor:
    """Analysis: extend, convolve with the K decomposition filters, keep every other sample.

    `x` is ``(M, 1, n)`` or ``(M, 1, H, W)`` and `dec` ``(K, 1, L)`` or ``(K, 1, L, L)`` from
    `wavelet_filters`; returns ``(M, K, N)`` or ``(M, K, N_H, N_W)`` with ``N = dwt_coeff_len``.
    """
    ndim = dec.dim() - 2
    filter_len = dec.shape[-1]
    x = extend(x, [analysis_padding(n, filter_len, mode) for n in x.shape[2:]], mode)
    # conv1d/conv2d correlate; flipping the filters makes them convolve as PyWavelets does.
    flipped = dec.flip(list(range(2, dec.dim())))
    if ndim == 1:
        return F.conv1d(x, flipped, stride=2)
    # The same memory seen as channels-last (free with one channel): for float32 on CPU this
    # selects oneDNN's convolution, several times faster than the default kernel.
    x = x.reshape(x.shape[0], *x.shape[2:], 1).permute(0, 3, 1, 2)
    return F.conv2d(x, flipped, stride=2)


def synthesis_filter_bank(coeffs: Tensor, rec: Tensor, mode: str) -> Tensor:
    """One synthesis step: upsample each band by 2, convolve with its reconstruction filter, sum.

    `coeffs` is ``(M, K, N)`` or ``(M, K, N_H, N_W)`` and `rec` ``(K, 1, L)`` or ``(K, 1, L, L)``;
    returns ``(M, 1, 2N - L + 2)`` (per axis), or ``(M, 1, 2N)`` for periodization. A transposed
    convolution of stride 2 is exactly "insert zeros, then convolve"; its `padding` trims the
    ``L - 2`` samples at each end that depend on the extension (PyWavelets' "valid" part).
    """
    ndim = rec.dim() - 2
    filter_len = rec.shape[-1]
    if mode == "periodization":
        # Output sample m needs the coefficients within L/4 of m/2: wrap that many round each end.
        wrap = filter_len // 4
        coeffs = extend(coeffs, [(wrap, wrap)] * ndim, "periodic")
        padding = filter_len // 2 - 1 + 2 * wrap
    else:
        padding = filter_len - 2
    if ndim == 1:
        return F.conv_transpose1d(coeffs, rec, stride=2, padding=padding)
    # Bands side by side in memory (channels-last): for float32 on CPU the transposed convolution
    # is then about 1.5x faster (idwt_along already stacks them so; then this is free).
    coeffs = coeffs.contiguous(memory_format=torch.channels_last)
    return F.conv_transpose2d(coeffs, rec, stride=2, padding=padding)


DTYPES = (torch.float32, torch.float64)


def check_data(data: Tensor, name: str, mode: str) -> None:
    """Check that `data` is a float32 or float64 tensor and `mode` a supported boundary mode.

    Half precision (float16, bfloat16) is refused rather than computed: its 8-11 bit mantissa
    cannot keep the transform's promise of equality with PyWavelets (nor perfect reconstruction),
    and complex or integer data has no meaning for these real filter banks.
    """
    if not isinstance(data, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(data).__name__}. "
                        f"Convert it with torch.as_tensor({name}, dtype=torch.float64).")
    if data.dtype not in DTYPES:
        kind = ("complex" if data.is_complex() else "half-precision" if data.is_floating_point()
                else "integer or boolean")
        raise ValueError(f"{name} must be a float32 or float64 (floating-point) tensor; got {kind} "
                         f"{data.dtype}. Use {name}.double() (PyWavelets computes in float64) or "
                         f"{name}.float()" + (", and transform the real and imaginary parts apart."
                                               if data.is_complex() else "."))
    check_mode(mode)


def check_axes(axes: Sequence[int], tensor_ndim: int, ndim: int) -> tuple[int, ...]:
    """`ndim` distinct dimensions of a tensor with `tensor_ndim` dims, as non-negative indices."""
    if len(axes) != ndim or not all(-tensor_ndim <= a < tensor_ndim for a in axes):
        raise ValueError(f"a {ndim}-D transform needs {ndim} axis/axes of the tensor; got "
                         f"{tuple(axes)} for a tensor with {tensor_ndim} dimension(s)")
    axes = tuple(a % tensor_ndim for a in axes)
    if len(set(axes)) != ndim:
        raise ValueError(f"axes must be different dimensions; got {axes}")
    return axes


def _kernels(*tensors: Tensor):
    """The compiled wavelet kernels if these tensors may use them (CPU, float32/64, no gradient
    wanted, no dispatch mode such as `hmrlab.complexity.measure`'s FLOP counter watching: it must see
    the torch operations), else None; `hmrlab.nn.numba_backend` decides whether they load at all."""
    if any(t.device.type != "cpu" for t in tensors) or is_in_torch_dispatch_mode():
        return None
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return None
    kernels = numba_backend.load("wavelet_kernels")
    if kernels is not None:
        numba_backend.sync_threads(torch.get_num_threads())
    return kernels


def source_index(n: int, before: int, after: int, mode: str) -> Tensor:
    """`extension_index`, with -1 for the positions that mode ``"zero"`` fills with zeros."""
    if mode == "zero":
        i = torch.arange(-before, n + after)
        return torch.where((i >= 0) & (i < n), i, -1)
    return extension_index(n, before, after, mode)


def _empty(dtype: torch.dtype, *shape: int) -> Tensor:
    """An uninitialised CPU tensor in NumPy's memory: for arrays of megabytes NumPy asks the kernel
    for huge pages, and first touching a 200 MB output then took 10 ms instead of 30."""
    return torch.from_numpy(np.empty(shape, np.float32 if dtype == torch.float32 else np.float64))


def _dwt2_kernel(kernels, planes: Tensor, dec1: Tensor, mode: str) -> list[Tensor]:
    """dwt2 of planes (M, H, W) by `hmrlab.nn.wavelet_kernels`, with the 1-D decomposition filters
    dec1 (2, 1, L) of `wavelet_filters`: 4 contiguous bands (M, NH, NW), cA, cH, cV, cD."""
    filter_len = dec1.shape[-1]
    index = []
    for n in planes.shape[1:]:
        if mode == "reflect" and n < 2:
            raise ValueError(f"mode 'reflect' needs at least 2 samples along each axis; got shape "
                             f"{tuple(planes.shape[1:])}; use 'symmetric' for shorter signals")
        index.append(source_index(n, *analysis_padding(n, filter_len, mode), mode).numpy())
    lo, hi = (f.flip(0).to(planes.dtype).contiguous().numpy() for f in dec1[:, 0])  # correlation taps
    sizes = [dwt_coeff_len(n, filter_len, mode) for n in planes.shape[1:]]
    bands = _empty(planes.dtype, 4, planes.shape[0], *sizes)
    kernels.dwt2_planes(planes.numpy(), *index, lo, hi, *bands.numpy(), torch.get_num_threads() > 1)
    return list(bands.unbind(0))


def dwt_along(data: Tensor, dec: Tensor, mode: str, axes: Sequence[int], dec1: Tensor | None = None) -> list[Tensor]:
    """One DWT level along `axes` with filters `dec` from `wavelet_filters`.

    ``(..., *n) -> [K bands (..., *N)]`` (cA, cD for 1-D; cA, cH, cV, cD for 2-D), shown for axes
    that are the last ones; any others work the same, the bands keep the layout of `data` (except
    on the kernel path). For 2-D, `dec1`, the wavelet's 1-D decomposition filters (2, 1, L), lets
    it run the single-pass kernel (module docstring) where it may.
    """
    ndim = dec.dim() - 2
    check_data(data, "data", mode)
    axes = check_axes(axes, data.dim(), ndim)
    last = tuple(range(-ndim, 0))
    x = data.movedim(axes, last)
    lead, sizes = x.shape[: x.dim() - ndim], x.shape[x.dim() - ndim :]
    if min(sizes) < 1:
        raise ValueError(f"data must have at least one sample along axes {axes}; "
                         f"got shape {tuple(data.shape)}")
    kernels = _kernels(data) if ndim == 2 and dec1 is not None else None
    if kernels is not None:
        bands = _dwt2_kernel(kernels, x.reshape(-1, *sizes).contiguous(), dec1, mode)
        return [band.reshape(*lead, *band.shape[1:]).movedim(last, axes) for band in bands]
    bands = analysis_filter_bank(x.reshape(-1, 1, *sizes), dec.to(x), mode)
    return [band.reshape(*lead, *band.shape[1:]).movedim(last, axes) for band in bands.unbind(1)]


def _idwt2_kernel(kernels, bands: list[Tensor], rec1: Tensor, mode: str) -> Tensor:
    """idwt2 of 4 bands (M, NH, NW) by the polyphase kernel of `hmrlab.nn.wavelet_kernels`, with the
    1-D reconstruction filters rec1 (2, 1, L): (M, 2 NH - L + 2, ...) or (M, 2 NH, 2 NW) for periodization."""
    filter_len = rec1.shape[-1]
    sizes = bands[0].shape[1:]
    crop = 0
    if mode == "periodization":
        # As in `synthesis_filter_bank`: wrap L/4 coefficients round each end, then trim what the
        # transposed convolution's padding trims beyond the valid part.
        wrap = filter_len // 4
        bands = [extend(b, [(wrap, wrap)] * 2, "periodic") for b in bands]
        crop = 2 * wrap - filter_len // 2 + 1
        out_sizes = [2 * n for n in sizes]
    else:
        out_sizes = [2 * n - filter_len + 2 for n in sizes]
    phases = kernels.polyphase(*(f.to(bands[0].dtype).numpy() for f in rec1[:, 0]))
    out = _empty(bands[0].dtype, bands[0].shape[0], *out_sizes)
    kernels.idwt2_planes(*(b.contiguous().numpy() for b in bands), phases, crop, crop, out.numpy(),
                         torch.get_num_threads() > 1)
    return out


def idwt_along(
    coeffs: Sequence[Tensor | None], rec: Tensor, mode: str, axes: Sequence[int], rec1: Tensor | None = None,
) -> Tensor:
    """Inverse of `dwt_along`: K bands ``(..., *N)``, None for zeros, -> ``(..., *n)``.

    ``n = 2 N - L + 2`` per axis, ``2 N`` for periodization (see `synthesis_filter_bank`). For 2-D,
    `rec1`, the wavelet's 1-D reconstruction filters (2, 1, L), lets it run the polyphase kernel.
    """
    ndim = rec.dim() - 2
    given = [c for c in coeffs if c is not None]
    if not given:
        raise ValueError("at least one coefficient tensor must be given (not None)")
    for c in given:
        check_data(c, "coefficients", mode)
    shapes = [tuple(c.shape) for c in given]
    if len(set(shapes)) > 1:
        raise ValueError(f"all coefficient tensors must have the same shape; got {shapes}. "
                         "Pass the coefficients of one level exactly as dwt/dwt2 returned them.")
    axes = check_axes(axes, given[0].dim(), ndim)
    last = tuple(range(-ndim, 0))
    ref = given[0].movedim(axes, last)
    lead, sizes = ref.shape[: ref.dim() - ndim], ref.shape[ref.dim() - ndim :]
    filter_len = rec.shape[-1]
    least = 1 if mode == "periodization" else filter_len // 2
    if min(sizes) < least:
        raise ValueError(f"coefficients of shape {shapes[0]} are too short along axes {axes} for "
                         f"filters of length {filter_len} in mode {mode!r}: dwt gives at least "
                         f"{least}; use the wavelet and mode of the decomposition")
    bands = [torch.zeros_like(ref) if c is None else c.movedim(axes, last) for c in coeffs]
    kernels = _kernels(*given) if ndim == 2 and rec1 is not None else None
    if kernels is not None:
        out = _idwt2_kernel(kernels, [b.reshape(-1, *sizes) for b in bands], rec1, mode)
        return out.reshape(*lead, *out.shape[1:]).movedim(last, axes)
    bands = torch.stack(bands, -1).movedim(-1, -ndim - 1).reshape(-1, len(coeffs), *sizes)
    out = synthesis_filter_bank(bands, rec.to(ref), mode)
    return out.reshape(*lead, *out.shape[2:]).movedim(last, axes)


def dwt(
    data: Tensor, wavelet: str | pywt.Wavelet, mode: str = "symmetric", axis: int = -1
) -> tuple[Tensor, Tensor]:
    """Single-level 1-D DWT along `axis`, like ``pywt.dwt``: ``(..., n) -> cA, cD``.

    Each band is ``(..., N)`` with ``N = dwt_coeff_len(n, L, mode)``; shapes shown for the default
    ``axis=-1``.
    """
    cA, cD = dwt_along(data, wavelet_filters(wavelet, 1)[0], mode, (axis,))
    return cA, cD


def idwt(
    cA: Tensor | None,
    cD: Tensor | None,
    wavelet: str | pywt.Wavelet,
    mode: str = "symmetric",
    axis: int = -1,
) -> Tensor:
    """Single-level inverse 1-D DWT, like ``pywt.idwt``: cA, cD ``(..., N) -> (..., 2N - L + 2)``.

    Periodization gives ``(..., 2N)``. Either band may be None (taken as zeros).
    """
    return idwt_along([cA, cD], wavelet_filters(wavelet, 1)[1], mode, (axis,))


def dwt2(
    data: Tensor,
    wavelet: str | pywt.Wavelet,
    mode: str = "symmetric",
    axes: Sequence[int] = (-2, -1),
) -> Coeffs2:
    """Single-level 2-D DWT, like ``pywt.dwt2``: ``(..., H, W) -> (cA, (cH, cV, cD))``.

    Each band is ``(..., N_H, N_W)`` with ``N_H = dwt_coeff_len(H, L, mode)`` (and likewise for W);
    `axes` picks the two dimensions (rows first), shapes shown for the default ``(-2, -1)``.
    """
    cA, cH, cV, cD = dwt_along(data, wavelet_filters(wavelet, 2)[0], mode, axes, wavelet_filters(wavelet, 1)[0])
    return cA, (cH, cV, cD)


def idwt2(
    coeffs: Coeffs2,
    wavelet: str | pywt.Wavelet,
    mode: str = "symmetric",
    axes: Sequence[int] = (-2, -1),
) -> Tensor:
    """Single-level inverse 2-D DWT, like ``pywt.idwt2``: ``(cA, (cH, cV, cD)) -> (..., h, w)``.

    Bands are ``(..., N_H, N_W)``, any of them may be None (zeros); ``h = 2 N_H - L + 2``
    (``2 N_H`` for periodization), likewise w.
    """
    cA, (cH, cV, cD) = coeffs
    return idwt_along([cA, cH, cV, cD], wavelet_filters(wavelet, 2)[1], mode, axes, wavelet_filters(wavelet, 1)[1])


def check_level(sizes: Sequence[int], wavelet: pywt.Wavelet, level: int | None) -> int:
    """Decomposition level: `level`, or the deepest useful one (``dwt_max_level``) if None."""
    if level is not None and (isinstance(level, bool) or not isinstance(level, (int, np.integer))):
        raise ValueError(f"level must be an int >= 0 or None (for dwt_max_level); got {level!r} of type "
                         f"{type(level).__name__}" + (f"; use level={int(level)}" if isinstance(level, str)
                                                      and level.isdigit() else ""))
    max_level = min(dwt_max_level(n, wavelet.dec_len) for n in sizes)
    if level is None:
        return max_level
    if level < 0:
        raise ValueError(f"level must be >= 0 (or None for dwt_max_level); got {level}")
    if level > max_level:
        warnings.warn(f"level {level} is above dwt_max_level = {max_level} for sizes "
                      f"{tuple(sizes)}: every coefficient will carry boundary effects",
                      stacklevel=3)
    return level


def wavedec(
    data: Tensor,
    wavelet: str | pywt.Wavelet,
    mode: str = "symmetric",
    level: int | None = None,
    axis: int = -1,
) -> list[Tensor]:
    """Multilevel 1-D DWT, like ``pywt.wavedec``: ``(..., n) -> [cAn, cDn, ..., cD1]``.

    Level j halves the length again (``dwt_coeff_len``); `level` None uses ``dwt_max_level``.
    """
    wavelet = as_wavelet(wavelet)
    check_data(data, "data", mode)
    (axis,) = check_axes((axis,), data.dim(), 1)
    level = check_level([data.shape[axis]], wavelet, level)
    details = []
    a = data
    for _ in range(level):
        a, d = dwt(a, wavelet, mode, axis)
        details.append(d)
    return [a, *reversed(details)]


def trim_to(a: Tensor, detail: Tensor, axes: Sequence[int]) -> Tensor:
    """Crop approximation `a` to the shape of `detail`, dropping the extra last sample along `axes`
    that idwt adds to a signal of odd length (as PyWavelets' waverec and waverec2 do)."""
    if not (isinstance(a, Tensor) and isinstance(detail, Tensor)):
        raise ValueError("waverec/waverec2 need every band as a tensor; to leave a band out, "
                         "pass torch.zeros_like(band), as PyWavelets recommends")
    axes = [axis % a.dim() for axis in axes]
    excess = [s - t for s, t in zip(a.shape, detail.shape)]
    if a.dim() != detail.dim() or any(e not in ((0, 1) if i in axes else (0,))
                                      for i, e in enumerate(excess)):
        raise ValueError(f"coefficient shape mismatch: the approximation {tuple(a.shape)} does not "
                         f"fit the details {tuple(detail.shape)} of the next level; pass the list "
                         "exactly as wavedec/wavedec2 returned it")
    return a[tuple(slice(t) for t in detail.shape)]


def waverec(
    coeffs: Sequence[Tensor], wavelet: str | pywt.Wavelet, mode: str = "symmetric", axis: int = -1
) -> Tensor:
    """Multilevel inverse 1-D DWT, like ``pywt.waverec``: ``[cAn, cDn, ..., cD1] -> (..., n')``.

    ``n'`` is the original length, or one more if it was odd (as in PyWavelets).
    """
    if len(coeffs) < 1:
        raise ValueError("coeffs must be a list [cAn, cDn, ..., cD1] with at least cAn")
    wavelet = as_wavelet(wavelet)
    a = coeffs[0]
    for d in coeffs[1:]:
        a = idwt(trim_to(a, d, (axis,)), d, wavelet, mode, axis)
    return a


def wavedec2(
    data: Tensor,
    wavelet: str | pywt.Wavelet,
    mode: str = "symmetric",
    level: int | None = None,
    axes: Sequence[int] = (-2, -1),
) -> list[Tensor | tuple[Tensor, Tensor, Tensor]]:
    """Multilevel 2-D DWT, like ``pywt.wavedec2``: ``(..., H, W) -> [cAn, (cHn, cVn, cDn), ...,
    (cH1, cV1, cD1)]``; `level` None uses ``dwt_max_level`` of the smaller side."""
    wavelet = as_wavelet(wavelet)
    check_data(data, "data", mode)
    axes = check_axes(axes, data.dim(), 2)
    level = check_level([data.shape[a] for a in axes], wavelet, level)
    details = []
    a = data
    for _ in range(level):
        a, d = dwt2(a, wavelet, mode, axes)
        details.append(d)
    return [a, *reversed(details)]


def waverec2(
    coeffs: Sequence, wavelet: str | pywt.Wavelet, mode: str = "symmetric",
    axes: Sequence[int] = (-2, -1),
) -> Tensor:
    """Multilevel inverse 2-D DWT, like ``pywt.waverec2``: ``[cAn, (cHn, cVn, cDn), ...] ->
    (..., H', W')``, each side the original or one more if it was odd."""
    if len(coeffs) < 1:
        raise ValueError("coeffs must be a list [cAn, (cHn, cVn, cDn), ..., (cH1, cV1, cD1)]")
    wavelet = as_wavelet(wavelet)
    a = coeffs[0]
    for details in coeffs[1:]:
        if len(details) != 3:
            raise ValueError("each detail level must be a tuple (cH, cV, cD) as wavedec2 returns")
        a = idwt2((trim_to(a, details[0], axes), details), wavelet, mode, axes)
    return a


class DWT2d(nn.Module):
    """One 2-D DWT level as a module: ``(B, C, H, W) -> (cA, (cH, cV, cD))``, each ``(B, C, h, w)``.

    Equal to ``dwt2(x, wavelet, mode)``; the filters are buffers (not parameters, not saved in the
    state dict), so ``.to(device)`` moves them with the model.
    """

    def __init__(self, wavelet: str | pywt.Wavelet = "haar", mode: str = "symmetric") -> None:
        super().__init__()
        check_mode(mode)
        self.mode = mode
        self.register_buffer("dec", wavelet_filters(wavelet, 2)[0], persistent=False)
        self.register_buffer("dec1", wavelet_filters(wavelet, 1)[0], persistent=False)

    def forward(self, x: Tensor) -> Coeffs2:
        cA, cH, cV, cD = dwt_along(x, self.dec, self.mode, (-2, -1), self.dec1)
        return cA, (cH, cV, cD)


class IDWT2d(nn.Module):
    """The inverse of `DWT2d`, equal to ``idwt2``: ``(cA, (cH, cV, cD)) -> (B, C, H, W)``."""

    def __init__(self, wavelet: str | pywt.Wavelet = "haar", mode: str = "symmetric") -> None:
        super().__init__()
        check_mode(mode)
        self.mode = mode
        self.register_buffer("rec", wavelet_filters(wavelet, 2)[1], persistent=False)
        self.register_buffer("rec1", wavelet_filters(wavelet, 1)[1], persistent=False)

    def forward(self, coeffs: Coeffs2) -> Tensor:
        cA, (cH, cV, cD) = coeffs
        return idwt_along([cA, cH, cV, cD], self.rec, self.mode, (-2, -1), self.rec1)
