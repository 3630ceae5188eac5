"""Fused XNOR-popcount kernels for CPU inference, compiled by numba: the fast twin of `hmrlab.nn.bitpack`.

`hmrlab.nn.bitpack` is the readable reference: its maths (``a · w = n - 2 popcount(a XOR w)`` on
packed ±1 vectors, XNOR-Net Sec. 3.2) is the maths here, and ``tests/nn/test_xnor.py`` checks the
two against each other and against ``F.conv2d``. What makes this module fast is how the work is laid
out, not a different formula:

1. **Channels-last bit planes.** `pack_nhwc` turns a float map seen as (B, H, W, C) into (B, H, W,
   ceil(C / 64)) int64 words, bit ``c % 64`` of word ``c // 64`` being ``x[..., c] - t[c] >= 0``:
   RSign's threshold and the sign are folded into the one pass that packs.
2. **A popcount GEMM.** For a block of output positions `conv_nhwc` gathers each position's
   receptive field as a row of ``K = kh kw ceil(C / 64)`` words (im2col on words, 64x smaller than
   on floats), then for four positions at a time and a block of `OUT_BLOCK` output channels runs
   ``acc[p, o] += popcount(x[p, k] XOR w[k, o])`` with ``o`` innermost: LLVM turns that loop into
   AVX-512 ``vpxorq`` + ``vpopcntq`` + ``vpaddd`` on 8 channels at once where the CPU has them
   (AVX2 and scalar ``popcnt`` otherwise). Blocks of positions x channels are the parallel tasks
   (numba ``prange``, as many threads as torch uses); a weight block stays in L1/L2 across its
   positions.
3. **Exact zero padding.** A padded tap gathers 0 words, and ``popcount(0 XOR w) = popcount(w)``
   would count the tap's weight bits as disagreements. They are subtracted again (`tap_popcounts`
   per tap and output channel, border positions only), and the valid count is
   ``n = C * (valid taps)``: the integers equal ``F.conv2d`` on ±1 tensors with zero padding.
4. **A fused epilogue.** The integer result becomes float once: ``v = alpha[o] dot + beta[o]``
   (XNOR-Net's scale and the bias), then optionally RPReLU ``PReLU(v - gamma) + zeta``, a shortcut,
   accumulation into the output (FDR's sum), an eval-mode BatchNorm ``v g + h`` and a post-BN
   residual (the ResNet block's shortcut, channels repeated) — a BiDRN unit in one pass over its
   output (`hmrlab.nn.xnor` builds those units). `unit_nhwc` runs a whole 1x1 unit (all its
   branches: FUR's concatenation, FDR's sum) in one call, packing the inputs once per block of
   positions. Epilogue loops index with unsigned offsets or plain loop variables only: numba's
   wraparound of a negative signed index (``x[offset + o]``) kept LLVM from vectorizing them.

numba compiles these functions on first use and caches the machine code beside this file
(``cache=True``); `hmrlab.nn.xnor` loads this module through `hmrlab.nn.numba_backend` (which runs `self_check`)
and otherwise falls back to `hmrlab.nn.bitpack`.
"""

from __future__ import annotations

import os

import numpy as np
from numba import config, njit, prange, types
from numba.extending import intrinsic

__all__ = [
    "OUT_BLOCK", "POSITION_BLOCK", "PRELU", "SHORTCUT", "ACCUMULATE", "BATCHNORM", "POST",
    "PARAM_ROWS", "PARALLEL_WORK", "pack_nhwc", "conv_nhwc", "unit_nhwc", "self_check",
]

# numba's OpenMP layer keeps its idle threads spinning, which starves torch's own OpenMP threads and
# these kernels in turn: a packed ResNet-50 ran 9x slower. Its workqueue layer sleeps instead (it
# runs one parallel call at a time: call the kernels from one thread). NUMBA_THREADING_LAYER wins.
if "NUMBA_THREADING_LAYER" not in os.environ:
    config.THREADING_LAYER = "workqueue"

OUT_BLOCK = 64  # output channels per task: a weight block of K x 64 words stays in L1/L2
POSITION_BLOCK = 64  # output positions per task
# Below this many word operations (outputs x (K + 8)) a call runs in the calling thread: waking the
# pool costs tens of microseconds, far more on a busy machine, and a binary ResNet has many tiny layers.
PARALLEL_WORK = 1 << 20
# Epilogue steps, a bit each in `conv_nhwc`'s `flags`, applied in this order after alpha dot + beta.
PRELU, SHORTCUT, ACCUMULATE, BATCHNORM, POST = 1, 2, 4, 8, 16
# Rows of `conv_nhwc`'s `params` (PARAM_ROWS, O) float32.
PARAM_ROWS = ("alpha", "beta", "shift_in", "slope", "shift_out", "bn_scale", "bn_shift")


@intrinsic
def _popcount(typingctx, word):
    """LLVM's ``ctpop``: one ``popcnt`` (or, vectorized, ``vpopcntq``) instruction per word."""
    signature = types.int64(types.int64)

    def codegen(context, builder, sig, args):
        return builder.ctpop(args[0])

    return signature, codegen


# Gathers the low bit of each of 8 bytes into one byte (bit i from byte i): byte i times byte 7 - i
# of the constant lands in the top byte, at bit 56 + i, with no carries between the eight products.
_GATHER_BITS = np.uint64(0x0102040810204080)


@njit(cache=True)
def _pack_row(task, x, channel_offset, threshold, out):  # pragma: no cover - compiled
    """Row ``task = b H + h`` of `pack_nhwc`."""
    height, width = x.shape[1], x.shape[2]
    channels = threshold.shape[0]
    words = out.shape[3]
    b = task // height
    h = task % height
    flags = np.zeros(64 * words, np.uint8)
    lanes = flags.view(np.uint64)
    for w in range(width):
        row = x[b, h, w, channel_offset : channel_offset + channels]
        for c in range(channels):
            flags[c] = 1 if row[c] - threshold[c] >= 0 else 0
        dst = out[b, h, w]
        for k in range(words):
            word = np.uint64(0)
            for i in range(8):
                word |= ((lanes[8 * k + i] * _GATHER_BITS) >> np.uint64(56)) << np.uint64(8 * i)
            dst[k] = np.int64(word)


@njit(parallel=True, cache=True)
def _pack_parallel(x, channel_offset, threshold, out):  # pragma: no cover - compiled
    for task in prange(x.shape[0] * x.shape[1]):
        _pack_row(task, x, channel_offset, threshold, out)


@njit(cache=True)
def _pack_serial(x, channel_offset, threshold, out):  # pragma: no cover - compiled
    for task in range(x.shape[0] * x.shape[1]):
        _pack_row(task, x, channel_offset, threshold, out)


def pack_nhwc(x, channel_offset, threshold, out, parallel=True) -> None:
    """Signs of ``x[..., offset + c] - threshold[c]`` packed: x (B, H, W, Cx) float32, threshold (C,)
    float32, out (B, H, W, ceil(C / 64)) int64 (bit ``c % 64`` of word ``c // 64``; 1 for >= 0).

    The comparisons run vectorized into a byte per channel; `_GATHER_BITS` then turns 8 bytes
    into 8 bits with one multiply, 8 multiplies a word. Rows are the parallel tasks.
    """
    (_pack_parallel if parallel else _pack_serial)(x, channel_offset, threshold, out)


@njit(cache=True)
def _conv_task(
    task, xw, weight_words, tap_popcounts, channels, kh, kw, sy, sx, py, px, dy, dx,
    params, flags, shortcut, shortcut_offset, post, out, out_offset,
):  # pragma: no cover - compiled
    """Task ``task`` of `conv_nhwc`: one block of positions times one block of output channels."""
    batch, height, width, cw = xw.shape
    k_words, out_channels = weight_words.shape
    oh, ow = out.shape[1], out.shape[2]
    post_channels = post.shape[3]
    planes = oh * ow
    n_oblocks = (out_channels + OUT_BLOCK - 1) // OUT_BLOCK
    n_pblocks = (planes + POSITION_BLOCK - 1) // POSITION_BLOCK
    b = task // (n_pblocks * n_oblocks)
    rest = task % (n_pblocks * n_oblocks)
    p_start = (rest // n_oblocks) * POSITION_BLOCK
    o0 = (rest % n_oblocks) * OUT_BLOCK
    n = min(OUT_BLOCK, out_channels - o0)
    npos = min(POSITION_BLOCK, planes - p_start)
    acc = np.zeros((npos, OUT_BLOCK), np.int32)
    valid = np.empty(npos, np.int32)
    if kh == 1 and kw == 1 and sy == 1 and sx == 1 and py == 0 and px == 0:
        # A 1x1 convolution of stride 1: the packed pixels already are the columns.
        cols = xw[b].reshape((height * width, cw))[p_start : p_start + npos]
        valid[:] = channels
    else:
        cols = np.zeros((npos, k_words), np.int64)
        # im2col on words; a padded tap keeps its 0 words and gives back its weights' set bits.
        for q in range(npos):
            p = p_start + q
            oy = p // ow
            ox = p % ow
            taps = 0
            for i in range(kh):
                iy = oy * sy - py + i * dy
                for j in range(kw):
                    ix = ox * sx - px + j * dx
                    if iy >= 0 and iy < height and ix >= 0 and ix < width:
                        taps += 1
                        base = (i * kw + j) * cw
                        for c in range(cw):
                            cols[q, base + c] = xw[b, iy, ix, c]
                    else:
                        counts = tap_popcounts[i * kw + j, o0 : o0 + n]
                        row = acc[q]
                        for o in range(n):
                            row[o] -= counts[o]
            valid[q] = taps * channels
    # The popcount GEMM, four positions per pass over a weight row.
    q = 0
    while q + 4 <= npos:
        a0 = acc[q]
        a1 = acc[q + 1]
        a2 = acc[q + 2]
        a3 = acc[q + 3]
        c0 = cols[q]
        c1 = cols[q + 1]
        c2 = cols[q + 2]
        c3 = cols[q + 3]
        for k in range(k_words):
            x0 = c0[k]
            x1 = c1[k]
            x2 = c2[k]
            x3 = c3[k]
            wrow = weight_words[k, o0 : o0 + n]
            for o in range(n):
                w = wrow[o]
                a0[o] += np.int32(_popcount(x0 ^ w))
                a1[o] += np.int32(_popcount(x1 ^ w))
                a2[o] += np.int32(_popcount(x2 ^ w))
                a3[o] += np.int32(_popcount(x3 ^ w))
        q += 4
    while q < npos:
        a0 = acc[q]
        c0 = cols[q]
        for k in range(k_words):
            x0 = c0[k]
            wrow = weight_words[k, o0 : o0 + n]
            for o in range(n):
                a0[o] += np.int32(_popcount(x0 ^ wrow[o]))
        q += 1
    # Epilogue: dot = n_valid - 2 (disagreements), then the float steps, each a vectorized loop.
    alpha, beta = params[0, o0 : o0 + n], params[1, o0 : o0 + n]
    shift_in, slope, shift_out = params[2, o0 : o0 + n], params[3, o0 : o0 + n], params[4, o0 : o0 + n]
    bn_scale, bn_shift = params[5, o0 : o0 + n], params[6, o0 : o0 + n]
    v = np.empty(n, np.float32)
    for q in range(npos):
        p = p_start + q
        oy = p // ow
        ox = p % ow
        row = acc[q]
        nv = valid[q]
        for o in range(n):
            v[o] = np.float32(nv - 2 * row[o]) * alpha[o] + beta[o]
        if flags & PRELU:
            for o in range(n):
                u = v[o] - shift_in[o]
                v[o] = (u if u > 0 else u * slope[o]) + shift_out[o]
        if flags & SHORTCUT:
            sc = shortcut[b, oy, ox, shortcut_offset + o0 : shortcut_offset + o0 + n]
            for o in range(n):
                v[o] = v[o] + sc[o]
        dst = out[b, oy, ox, out_offset + o0 : out_offset + o0 + n]
        if flags & ACCUMULATE:
            for o in range(n):
                v[o] = dst[o] + v[o]
        if flags & BATCHNORM:
            for o in range(n):
                v[o] = v[o] * bn_scale[o] + bn_shift[o]
        if flags & POST:
            pr = post[b, oy, ox]
            first = (out_offset + o0) % post_channels
            if first + n <= post_channels:
                pw = pr[first : first + n]  # a slice: the loop below vectorizes (no index arithmetic)
                for o in range(n):
                    v[o] = v[o] + pw[o]
            else:
                for o in range(n):
                    v[o] = v[o] + pr[(first + o) % post_channels]
        for o in range(n):
            dst[o] = v[o]


@njit(cache=True)
def _task_count(xw, weight_words, out):  # pragma: no cover - compiled
    planes = out.shape[1] * out.shape[2]
    return xw.shape[0] * (-(-planes // POSITION_BLOCK)) * (-(-weight_words.shape[1] // OUT_BLOCK))


@njit(parallel=True, cache=True)
def _conv_parallel(
    xw, weight_words, tap_popcounts, channels, kh, kw, sy, sx, py, px, dy, dx,
    params, flags, shortcut, shortcut_offset, post, out, out_offset,
):  # pragma: no cover - compiled
    for task in prange(_task_count(xw, weight_words, out)):
        _conv_task(task, xw, weight_words, tap_popcounts, channels, kh, kw, sy, sx, py, px, dy, dx,
                   params, flags, shortcut, shortcut_offset, post, out, out_offset)


@njit(cache=True)
def _conv_serial(
    xw, weight_words, tap_popcounts, channels, kh, kw, sy, sx, py, px, dy, dx,
    params, flags, shortcut, shortcut_offset, post, out, out_offset,
):  # pragma: no cover - compiled
    for task in range(_task_count(xw, weight_words, out)):
        _conv_task(task, xw, weight_words, tap_popcounts, channels, kh, kw, sy, sx, py, px, dy, dx,
                   params, flags, shortcut, shortcut_offset, post, out, out_offset)


def conv_nhwc(
    xw, weight_words, tap_popcounts, channels, kh, kw, sy, sx, py, px, dy, dx,
    params, flags, shortcut, shortcut_offset, post, out, out_offset, parallel=True,
) -> None:
    """XNOR-popcount convolution with the fused epilogue of the module docstring.

    xw (B, H, W, CW) int64 from `pack_nhwc`; weight_words (K, O) int64, row ``(i kw + j) CW + c``
    holding word c of tap (i, j) of every filter; tap_popcounts (kh kw, O) int32 (set bits of each
    tap's words); channels: C (the valid bits per tap); params (7, O) float32 (`PARAM_ROWS`);
    shortcut (B, OH, OW, Cs) float32, read at channel ``shortcut_offset + o``; post (B, OH, OW, Cp),
    read at ``(out_offset + o) % Cp``; out (B, OH, OW, Cout) float32, written (or accumulated) at
    channel ``out_offset + o``. Unused arrays may be (1, 1, 1, 1). `parallel`: blocks as
    parallel tasks (False: in this thread, which saves waking the pool for a small layer).
    """
    (_conv_parallel if parallel else _conv_serial)(
        xw, weight_words, tap_popcounts, channels, kh, kw, sy, sx, py, px, dy, dx,
        params, flags, shortcut, shortcut_offset, post, out, out_offset,
    )


@njit(cache=True)
def _unit_task(task, x, thresholds, in_offsets, weight_words, params, concat, use_post, post, out):  # pragma: no cover
    """Task ``task`` of `unit_nhwc`: one block of positions, every branch and output channel."""
    height, width = x.shape[1], x.shape[2]
    groups, channels = thresholds.shape
    cw, out_channels = weight_words.shape[1], weight_words.shape[2]
    post_channels = post.shape[3]
    planes = height * width
    n_pblocks = (planes + POSITION_BLOCK - 1) // POSITION_BLOCK
    b = task // n_pblocks
    p_start = (task % n_pblocks) * POSITION_BLOCK
    npos = min(POSITION_BLOCK, planes - p_start)
    # 1. Pack every branch's input signs once: row q holds branch g's words at g cw ... g cw + cw - 1.
    cols = np.empty((npos, groups * cw), np.int64)
    bits = np.zeros(64 * cw, np.uint8)
    lanes = bits.view(np.uint64)
    for q in range(npos):
        p = p_start + q
        row = x[b, p // width, p % width]
        for g in range(groups):
            src = row[in_offsets[g] : in_offsets[g] + channels]
            thr = thresholds[g]
            for c in range(channels):
                bits[c] = 1 if src[c] - thr[c] >= 0 else 0
            for k in range(cw):
                word = np.uint64(0)
                for i in range(8):
                    word |= ((lanes[8 * k + i] * _GATHER_BITS) >> np.uint64(56)) << np.uint64(8 * i)
                cols[q, g * cw + k] = np.int64(word)
    acc = np.empty((npos, OUT_BLOCK), np.int32)
    total = np.empty((npos, OUT_BLOCK), np.float32)
    nv = np.int32(channels)
    for o0 in range(0, out_channels, OUT_BLOCK):
        n = min(OUT_BLOCK, out_channels - o0)
        for g in range(groups):
            # 2. Branch g's popcount GEMM (1x1: its packed pixels are the columns), four positions a pass.
            acc[:, :] = 0
            wg = weight_words[g]
            base = g * cw
            q = 0
            while q + 4 <= npos:
                a0 = acc[q]
                a1 = acc[q + 1]
                a2 = acc[q + 2]
                a3 = acc[q + 3]
                for k in range(cw):
                    x0 = cols[q, base + k]
                    x1 = cols[q + 1, base + k]
                    x2 = cols[q + 2, base + k]
                    x3 = cols[q + 3, base + k]
                    wrow = wg[k, o0 : o0 + n]
                    for o in range(n):
                        w = wrow[o]
                        a0[o] += np.int32(_popcount(x0 ^ w))
                        a1[o] += np.int32(_popcount(x1 ^ w))
                        a2[o] += np.int32(_popcount(x2 ^ w))
                        a3[o] += np.int32(_popcount(x3 ^ w))
                q += 4
            while q < npos:
                a0 = acc[q]
                for k in range(cw):
                    x0 = cols[q, base + k]
                    wrow = wg[k, o0 : o0 + n]
                    for o in range(n):
                        a0[o] += np.int32(_popcount(x0 ^ wrow[o]))
                q += 1
            # 3. The branch's epilogue: alpha, beta, RPReLU, its shortcut (its own input channels), for
            # FDR the running sum, then BatchNorm and post, in one loop a position over unsigned
            # indices: numba wraps a negative signed index around, and for ``offset + o`` that check
            # made the loop scalar gathers (10x slower); unsigned, it vectorizes.
            gu, o0u, nu = np.uint64(g), np.uint64(o0), np.uint64(n)
            first_out = np.uint64(g * out_channels + o0 if concat else o0)
            first_in = np.uint64(in_offsets[g] + o0)
            first_post = np.uint64((g * out_channels + o0 if concat else o0) % post_channels)
            wrap = (g * out_channels + o0 if concat else o0) % post_channels + n > post_channels
            running = not concat and g < groups - 1
            summed = not concat and g > 0
            for q in range(npos):
                p = p_start + q
                oy = p // width
                ox = p % width
                for o in range(nu):
                    i = o0u + o
                    val = np.float32(nv - 2 * acc[q, o]) * params[gu, 0, i] + params[gu, 1, i]
                    u = val - params[gu, 2, i]
                    val = (u if u > 0 else u * params[gu, 3, i]) + params[gu, 4, i] + x[b, oy, ox, first_in + o]
                    if summed:
                        val = total[q, o] + val
                    total[q, o] = val
                if running:
                    continue
                if use_post and not wrap:
                    for o in range(nu):
                        i = o0u + o
                        out[b, oy, ox, first_out + o] = (total[q, o] * params[gu, 5, i] + params[gu, 6, i]
                                                         + post[b, oy, ox, first_post + o])
                else:
                    for o in range(nu):
                        i = o0u + o
                        out[b, oy, ox, first_out + o] = total[q, o] * params[gu, 5, i] + params[gu, 6, i]
                    if use_post:
                        for o in range(n):
                            c = (first_post + np.uint64(o)) % np.uint64(post_channels)
                            out[b, oy, ox, first_out + np.uint64(o)] += post[b, oy, ox, c]


@njit(parallel=True, cache=True)
def _unit_parallel(x, thresholds, in_offsets, weight_words, params, concat, use_post, post, out):  # pragma: no cover
    planes = x.shape[1] * x.shape[2]
    for task in prange(x.shape[0] * (-(-planes // POSITION_BLOCK))):
        _unit_task(task, x, thresholds, in_offsets, weight_words, params, concat, use_post, post, out)


@njit(cache=True)
def _unit_serial(x, thresholds, in_offsets, weight_words, params, concat, use_post, post, out):  # pragma: no cover
    planes = x.shape[1] * x.shape[2]
    for task in range(x.shape[0] * (-(-planes // POSITION_BLOCK))):
        _unit_task(task, x, thresholds, in_offsets, weight_words, params, concat, use_post, post, out)


def unit_nhwc(x, thresholds, in_offsets, weight_words, params, concat, use_post, post, out, parallel=True) -> None:
    """A whole 1x1, stride-1 BiDRN unit (LCR, FUR, FDR) in one call: each block of positions packs
    the signs of all its G branches' inputs once, then runs every branch's popcount GEMM and epilogue.

    x (B, H, W, Cx) float32; branch g reads channels ``in_offsets[g] + c`` (c < C) of x, both as its
    input (sign of ``x - thresholds[g, c]``, thresholds (G, C) float32) and as its shortcut (channel
    ``in_offsets[g] + o``, so O = C); weight_words (G, ceil(C / 64), O) int64 (`pack_filters` of
    each branch's 1x1 filters); params (G, 7, O) float32 (`PARAM_ROWS`, RPReLU always applied).
    ``concat`` True (FUR, LCR): branch g writes ``BN_g(...)`` (+ post) to channels ``g O + o`` of
    out; False (FDR): the branches' outputs are summed in order, then the last branch's BatchNorm
    (+ post) writes channels o. post (B, H, W, Cp), read at ``(out channel) % Cp`` when `use_post`.
    The same float operations in the same order as `conv_nhwc` branch by branch: the same numbers.
    """
    (_unit_parallel if parallel else _unit_serial)(
        x, thresholds, in_offsets, weight_words, params, concat, use_post, post, out)


def self_check() -> None:
    """Compile both kernels (serial and parallel) and check them on a 3x3 map of +1 with +1 filters,
    zero padding 1, identity RPReLU and the input as shortcut: each output is 2 (valid taps) + 1."""
    x = np.ones((1, 3, 3, 2), np.float32)
    words = np.full((9, 2), 3, np.int64)  # every tap: channels 0 and 1 set
    taps = np.full((9, 2), 2, np.int32)
    params = np.zeros((7, 2), np.float32)
    params[0] = params[3] = params[5] = 1.0
    expected = 2.0 * np.array([[4, 6, 4], [6, 9, 6], [4, 6, 4]], np.float32) + 1.0
    for parallel in (False, True):
        packed = np.empty((1, 3, 3, 1), np.int64)
        pack_nhwc(x, 0, np.zeros(2, np.float32), packed, parallel)
        out = np.empty((1, 3, 3, 2), np.float32)
        conv_nhwc(packed, words, taps, 2, 3, 3, 1, 1, 1, 1, 1, 1, params, PRELU | SHORTCUT, x, 0,
                  np.zeros((1, 1, 1, 1), np.float32), out, 0, parallel)
        if not (np.array_equal(out[0, :, :, 0], expected) and np.array_equal(out[0, :, :, 1], expected)):
            raise RuntimeError("the compiled XNOR kernel gave wrong results on a 3x3 check")
