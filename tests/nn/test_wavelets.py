"""hmrlab.nn.wavelets against PyWavelets, closed forms, round trips, Parseval and gradcheck."""

import math

import numpy as np
import pytest
import pywt
import torch

from hmrlab.nn import numba_backend, wavelets

WAVELETS = ["haar", "db2", "db4", "sym4", "bior2.2"]
ORTHOGONAL = ["haar", "db2", "db4", "sym4"]
MODES = list(wavelets.MODES)
TOL = 1e-10  # float64 results equal PyWavelets' to rounding


pytestmark = pytest.mark.usefixtures("one_thread")


def random(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def assert_same(ours: torch.Tensor, theirs: np.ndarray, tol: float = TOL) -> None:
    assert tuple(ours.shape) == theirs.shape
    np.testing.assert_allclose(ours.detach().numpy(), theirs, rtol=0, atol=tol)


def test_haar_by_hand():
    # pywt convolves with dec_hi = [-1, 1]/sqrt(2): cD[k] = (x[2k] - x[2k+1])/sqrt(2).
    x = torch.tensor([4.0, 6.0, 8.0, 10.0], dtype=torch.float64)
    cA, cD = wavelets.dwt(x, "haar")
    torch.testing.assert_close(cA, torch.tensor([10.0, 18.0], dtype=torch.float64) / math.sqrt(2))
    torch.testing.assert_close(cD, torch.tensor([-2.0, -2.0], dtype=torch.float64) / math.sqrt(2))
    pywt_cA, pywt_cD = pywt.dwt(x.numpy(), "haar")
    assert_same(cA, pywt_cA)
    assert_same(cD, pywt_cD)
    torch.testing.assert_close(wavelets.idwt(cA, cD, "haar"), x)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_dwt_idwt_match_pywt(wavelet, mode):
    for n in (5, 8, 13):  # odd and even, shorter and longer than db4's 8 taps
        x = random(2, 3, n)
        cA, cD = wavelets.dwt(torch.tensor(x), wavelet, mode)
        pywt_cA, pywt_cD = pywt.dwt(x, wavelet, mode)
        assert cA.shape[-1] == pywt.dwt_coeff_len(n, pywt.Wavelet(wavelet).dec_len, mode)
        assert_same(cA, pywt_cA)
        assert_same(cD, pywt_cD)
        # Inverse of coefficients that are not a dwt output: checks the synthesis on its own.
        a, d = random(2, 3, cA.shape[-1], seed=1), random(2, 3, cA.shape[-1], seed=2)
        assert_same(wavelets.idwt(torch.tensor(a), torch.tensor(d), wavelet, mode),
                    pywt.idwt(a, d, wavelet, mode))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_dwt2_idwt2_match_pywt(wavelet, mode):
    for size in ((9, 8), (6, 11)):
        x = random(2, 3, *size)
        ours = wavelets.dwt2(torch.tensor(x), wavelet, mode)
        theirs = pywt.dwt2(x, wavelet, mode)
        for band, pywt_band in zip((ours[0], *ours[1]), (theirs[0], *theirs[1])):
            assert_same(band, pywt_band)
        bands = [random(*ours[0].shape, seed=s) for s in range(4)]
        assert_same(
            wavelets.idwt2((torch.tensor(bands[0]), tuple(map(torch.tensor, bands[1:]))),
                           wavelet, mode),
            pywt.idwt2((bands[0], tuple(bands[1:])), wavelet, mode),
        )


def test_other_axes_and_missing_bands_match_pywt():
    x = random(5, 2, 7, 3)
    for band, pywt_band in zip(wavelets.dwt(torch.tensor(x), "db2", axis=0),
                               pywt.dwt(x, "db2", axis=0)):
        assert_same(band, pywt_band)
    cA, (cH, cV, cD) = wavelets.dwt2(torch.tensor(x), "sym4", "reflect", axes=(2, 0))
    pywt_cA, pywt_details = pywt.dwt2(x, "sym4", "reflect", axes=(2, 0))
    assert_same(cV, pywt_details[1])
    assert_same(wavelets.idwt2((cA, (None, cV, None)), "sym4", "reflect", axes=(2, 0)),
                pywt.idwt2((pywt_cA, (None, pywt_details[1], None)), "sym4", "reflect",
                           axes=(2, 0)))
    assert_same(wavelets.idwt(None, cA, "db2", axis=1), pywt.idwt(None, pywt_cA, "db2", axis=1))


@pytest.mark.parametrize("mode", ["symmetric", "periodization", "zero"])
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_wavedec_waverec_match_pywt(wavelet, mode):
    x = random(2, 45)
    for level in (None, 2):
        ours = wavelets.wavedec(torch.tensor(x), wavelet, mode, level)
        theirs = pywt.wavedec(x, wavelet, mode, level)
        assert len(ours) == len(theirs)
        for band, pywt_band in zip(ours, theirs):
            assert_same(band, pywt_band)
        assert_same(wavelets.waverec(ours, wavelet, mode), pywt.waverec(theirs, wavelet, mode))


@pytest.mark.parametrize("mode", ["symmetric", "periodization", "reflect"])
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_wavedec2_waverec2_match_pywt(wavelet, mode):
    x = random(2, 3, 41, 46)
    for level in (None, 2):
        ours = wavelets.wavedec2(torch.tensor(x), wavelet, mode, level)
        theirs = pywt.wavedec2(x, wavelet, mode, level)
        assert len(ours) == len(theirs)
        assert_same(ours[0], theirs[0])
        for details, pywt_details in zip(ours[1:], theirs[1:]):
            for band, pywt_band in zip(details, pywt_details):
                assert_same(band, pywt_band)
        assert_same(wavelets.waverec2(ours, wavelet, mode), pywt.waverec2(theirs, wavelet, mode))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_perfect_reconstruction(wavelet, mode):
    # PyWavelets reconstructs all of these exactly; odd sizes come back one sample longer.
    for n in (16, 17):
        x = torch.tensor(random(2, n))
        torch.testing.assert_close(wavelets.idwt(*wavelets.dwt(x, wavelet, mode), wavelet, mode)
                                   [..., :n], x, rtol=0, atol=TOL)
        image = torch.tensor(random(2, 3, n, n + 4))
        coeffs = wavelets.wavedec2(image, wavelet, mode)
        torch.testing.assert_close(wavelets.waverec2(coeffs, wavelet, mode)[..., :n, : n + 4],
                                   image, rtol=0, atol=TOL)


@pytest.mark.parametrize("wavelet", ORTHOGONAL)
def test_parseval_for_orthogonal_periodization(wavelet):
    x = torch.tensor(random(2, 3, 32, 24))
    cA, details = wavelets.dwt2(x, wavelet, "periodization")
    energy = sum(band.square().sum() for band in (cA, *details))
    torch.testing.assert_close(energy, x.square().sum(), rtol=1e-12, atol=0)
    signal = torch.tensor(random(2, 3, 64))
    coeffs = wavelets.wavedec(signal, wavelet, "periodization", level=2)
    torch.testing.assert_close(sum(c.square().sum() for c in coeffs), signal.square().sum(),
                               rtol=1e-12, atol=0)


@pytest.mark.parametrize("mode", ["symmetric", "periodization"])
def test_gradcheck(mode):
    def dwt2_flat(t):
        cA, details = wavelets.dwt2(t, "bior2.2", mode)
        return torch.cat([band.flatten() for band in (cA, *details)])

    assert torch.autograd.gradcheck(dwt2_flat, torch.tensor(random(1, 1, 4, 5), requires_grad=True))
    bands = [torch.tensor(random(1, 1, 2, 3, seed=s), requires_grad=True) for s in range(4)]
    assert torch.autograd.gradcheck(lambda a, h, v, d: wavelets.idwt2((a, (h, v, d)), "db2", mode),
                                    bands)


def test_float32():
    x = random(2, 3, 11, 16)
    cA, (cH, cV, cD) = wavelets.dwt2(torch.tensor(x, dtype=torch.float32), "db2")
    assert cA.dtype == torch.float32
    pywt_cA, pywt_details = pywt.dwt2(x, "db2")
    for band, pywt_band in zip((cA, cH, cV, cD), (pywt_cA, *pywt_details)):
        assert_same(band, pywt_band, tol=1e-5)
    x32 = torch.tensor(x, dtype=torch.float32)
    torch.testing.assert_close(wavelets.idwt2(wavelets.dwt2(x32, "db2"), "db2")[..., :11, :], x32,
                               rtol=0, atol=1e-5)


def test_modules_equal_functions_and_keep_filters_as_buffers():
    dwt2d = wavelets.DWT2d("sym4", "periodization")
    idwt2d = wavelets.IDWT2d("sym4", "periodization")
    assert list(dwt2d.parameters()) == [] and dwt2d.state_dict() == {}
    x = torch.tensor(random(2, 4, 10, 12), dtype=torch.float32)
    cA, details = dwt2d.to(torch.float32)(x)
    ref_cA, ref_details = wavelets.dwt2(x, "sym4", "periodization")
    torch.testing.assert_close(cA, ref_cA)
    for band, ref in zip(details, ref_details):
        torch.testing.assert_close(band, ref)
    torch.testing.assert_close(idwt2d((cA, details)), x, rtol=0, atol=1e-5)


def test_extend_matches_pywt_pad():
    for mode in MODES:
        for n in (2, 3, 5):
            x = np.arange(n, dtype=float)
            for before, after in ((0, 3), (4, 1), (7, 9)):  # also longer than the signal
                # pywt.pad counts the sample that makes an odd length even as part of `after`.
                extra = n % 2 if mode == "periodization" else 0
                ours = wavelets.extend(torch.tensor(x), [(before, after + extra)], mode)
                assert_same(ours, pywt.pad(x, (before, after), mode))
    image = random(3, 4)
    assert_same(wavelets.extend(torch.tensor(image), [(2, 1), (0, 5)], "symmetric"),
                pywt.pad(image, ((2, 1), (0, 5)), "symmetric"))


def test_lengths_match_pywt():
    for mode in MODES:
        for filter_len in (2, 4, 6, 16):
            for n in range(1, 40):
                assert wavelets.dwt_coeff_len(n, filter_len, mode) == pywt.dwt_coeff_len(
                    n, filter_len, mode)
    assert wavelets.dwt_max_level(56, "db2") == pywt.dwt_max_level(56, 4)


def test_wavelet_object_and_filters():
    wavelet = pywt.Wavelet("bior2.2")
    dec, rec = wavelets.wavelet_filters(wavelet, 1)
    assert_same(dec[:, 0], np.array([wavelet.dec_lo, wavelet.dec_hi]))
    assert_same(rec[:, 0], np.array([wavelet.rec_lo, wavelet.rec_hi]))
    dec2, _ = wavelets.wavelet_filters("bior2.2", 2)
    assert dec2.shape == (4, 1, 6, 6)
    # cH is high-pass along the rows (axis -2) and low-pass along the columns.
    assert_same(dec2[1, 0], np.outer(wavelet.dec_hi, wavelet.dec_lo))


def test_errors():
    x = torch.zeros(2, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="unknown discrete wavelet 'db0'.*'haar'"):
        wavelets.dwt(x, "db0")
    with pytest.raises(ValueError, match="unknown boundary mode 'mirror'.*symmetric"):
        wavelets.dwt(x, "haar", "mirror")
    with pytest.raises(ValueError, match="at least one sample"):
        wavelets.dwt(torch.zeros(2, 0), "haar")
    with pytest.raises(ValueError, match="'reflect' needs at least 2 samples"):
        wavelets.dwt(torch.zeros(2, 1), "haar", "reflect")
    with pytest.raises(ValueError, match="floating-point"):
        wavelets.dwt(torch.tensor([4, 6, 8, 10]), "haar")
    with pytest.raises(ValueError, match="same shape"):
        wavelets.idwt(torch.zeros(4), torch.zeros(5), "haar")
    with pytest.raises(ValueError, match="same shape"):
        wavelets.idwt2((torch.zeros(4, 4), (torch.zeros(4, 4), torch.zeros(4, 3), None)), "haar")
    with pytest.raises(ValueError, match="too short"):
        wavelets.idwt(torch.zeros(2), torch.zeros(2), "db4")
    with pytest.raises(ValueError, match="coefficient shape mismatch"):
        wavelets.waverec([torch.zeros(6), torch.zeros(4), torch.zeros(8)], "haar")
    with pytest.raises(ValueError, match="level must be >= 0"):
        wavelets.wavedec(x, "haar", level=-1)
    with pytest.raises(ValueError, match="axes must be different"):
        wavelets.dwt2(torch.zeros(4, 4), "haar", axes=(0, -2))
    with pytest.warns(UserWarning, match="above dwt_max_level"):
        wavelets.wavedec(x, "db2", level=4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int64, torch.complex64])
def test_refuses_other_dtypes(dtype):
    x = torch.zeros(2, 8, 8).to(dtype)
    with pytest.raises(ValueError, match=r"float32 or float64.*" + str(dtype).replace(".", r"\.")):
        wavelets.dwt2(x, "haar")
    with pytest.raises(ValueError, match="float32 or float64"):
        wavelets.idwt2((x, (x, x, x)), "haar")


def test_refuses_a_level_that_is_not_an_int():
    x = torch.zeros(2, 16, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"level must be an int.*'2'.*level=2"):
        wavelets.wavedec(x, "haar", level="2")
    with pytest.raises(ValueError, match="level must be an int"):
        wavelets.wavedec2(torch.zeros(8, 8), "haar", level=1.0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wavelet", ["haar", "db2", "sym4"])
def test_kernel_and_torch_paths_agree_with_pywt(wavelet, mode, monkeypatch):
    # The same call three ways: the numba kernels (no gradient wanted), the differentiable filter
    # bank (a tensor that requires grad) and the filter bank chosen by HMRLAB_NUMBA=0.
    x = random(2, 3, 10, 13, seed=4)
    theirs = pywt.dwt2(x, wavelet, mode)
    bands = [random(*theirs[0].shape, seed=s) for s in range(4)]
    expected = pywt.idwt2((bands[0], tuple(bands[1:])), wavelet, mode)

    def run(requires_grad):
        t = torch.tensor(x, requires_grad=requires_grad)
        b = [torch.tensor(v, requires_grad=requires_grad) for v in bands]
        return wavelets.dwt2(t, wavelet, mode), wavelets.idwt2((b[0], tuple(b[1:])), wavelet, mode)

    results = [run(False), run(True)]
    numba_backend.reset()
    monkeypatch.setenv("HMRLAB_NUMBA", "0")
    results.append(run(False))
    numba_backend.reset()
    for (cA, details), inverse in results:
        for band, pywt_band in zip((cA, *details), (theirs[0], *theirs[1])):
            assert_same(band, pywt_band)
        assert_same(inverse, expected)


def test_kernel_path_float32_on_a_feature_map():
    x = random(2, 4, 56, 56, seed=5).astype(np.float32)
    for wavelet in ("haar", "db2", "sym4"):
        cA, details = wavelets.dwt2(torch.tensor(x), wavelet)
        theirs = pywt.dwt2(x, wavelet)
        for band, pywt_band in zip((cA, *details), (theirs[0], *theirs[1])):
            assert_same(band, pywt_band, tol=1e-5)
        assert_same(wavelets.idwt2((cA, details), wavelet), pywt.idwt2(theirs, wavelet), tol=1e-5)


def test_the_flop_counter_sees_the_transform_even_where_the_kernels_would_run():
    # complexity.measure runs without gradients on the CPU, where the numba kernels would otherwise be used.
    from hmrlab import complexity

    with torch.no_grad():
        cost = complexity.measure(wavelets.DWT2d("haar"), torch.zeros(1, 4, 8, 8))
    assert cost.macs > 0
