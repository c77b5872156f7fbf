"""LS for many window sizes in one pass (kernels/window_sizes.py, machines.denoise_candidates): the oracle
for every size, the one-size kernel to rounding, threads/batches/labels, and bad input."""
import numpy as np
import pytest

from elscli import machines
from elscli.errors import ElscliError
from elscli.kernels import lanes
from elscli.kernels.window_sizes import CHUNK

from oracle import cosine_legacy, oracle_denoise, rel_err
from threads import require_two_threads

EXACT = 1e-6


@pytest.fixture(scope="module")
def digits(shared_data):
    """Twelve real MNIST digits (the golden bank), 32x32 centre-cropped to 20x20: flat backgrounds, so that
    at low noise most lanes are negligible (the skipping and compressing paths)."""
    g = np.load(shared_data / "golden" / "reference-scores-mnist.npz")
    return np.ascontiguousarray(g["bank_images"][:12, :, 6:26, 6:26])


def many_images(C, n=700, H=7, W=6, seed=0):
    """``n`` random images: two blocks of lanes (lanes_per_block(700) = 352), each of several chunks."""
    rng = np.random.default_rng([seed, C])
    return (rng.integers(0, 256, (n, C, H, W)) / 127.5 - 1.0).astype(np.float32)


def query(bank, t, seed=1):
    a, b = cosine_legacy(t)
    rng = np.random.default_rng(seed)
    return a * bank[seed % len(bank)].astype(np.float64) + b * rng.standard_normal(bank.shape[1:])


@pytest.mark.parametrize("t", [1.0, 0.6, 0.2, 0.03])
@pytest.mark.parametrize("C", [1, 3])
def test_every_size_matches_the_oracle(C, t):
    bank = many_images(C)
    assert len(bank) > 2 * CHUNK
    sizes = [1, 3, 5, 9, 13]               # 13 > 2 H: every window covers the whole image
    x = query(bank, t)
    got = machines.denoise_candidates("ls", x, t, bank, sizes)
    assert got.shape == (len(sizes),) + x.shape
    a, b = cosine_legacy(t)
    for k, P in enumerate(sizes):
        want, _ = oracle_denoise("ls", x, bank, a, b, P)
        assert rel_err(got[k], want) < EXACT, (C, t, P)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("t", [0.5, 0.1, 0.02])
def test_real_digits_match_the_oracle_with_and_without_compressed_lanes(digits, t, compress):
    if compress and not lanes.HAS_COMPRESS_STORE:
        pytest.skip("this CPU has no vector compress stores (AVX-512): the compressed path is not used")
    x = query(digits, t, seed=5)
    sizes = [3, 7, 11]
    got = machines.denoise_candidates("ls", x, t, digits, sizes,
                                      options=machines.DEFAULT_OPTIONS.replace(compress_lanes=compress))
    a, b = cosine_legacy(t)
    for k, P in enumerate(sizes):
        want, _ = oracle_denoise("ls", x, digits, a, b, P)
        assert rel_err(got[k], want) < EXACT, (t, P)


@pytest.mark.parametrize("t", [0.9, 0.3, 0.05])
def test_agrees_with_the_one_size_kernel_to_rounding(digits, t):
    """The shift kernel (one size per call) and the integral image sum in other orders: ~1e-13 apart."""
    rng = np.random.default_rng(3)
    x = np.stack([query(digits, t, seed=s) for s in range(3)])
    sizes = [1, 3, 5, 7, 9, 15, 41]
    got = machines.denoise_candidates("ls", x, t, digits, sizes)
    for k, P in enumerate(sizes):
        one = machines.denoise("ls", x, t, digits, P)
        for i in range(len(x)):
            assert rel_err(got[k, i], one[i]) < 1e-10, (t, P)
    assert rng is not None


def test_other_machines_call_denoise_once_per_size(digits):
    x = query(digits, 0.4)
    got = machines.denoise_candidates("bbels", x, 0.4, digits, [3, 5])
    for k, P in enumerate([3, 5]):
        np.testing.assert_array_equal(got[k], machines.denoise("bbels", x, 0.4, digits, P))


def test_threads_batch_and_size_list_do_not_change_a_bit():
    require_two_threads()
    bank = many_images(1, n=1100, seed=4)         # three blocks
    x = np.stack([query(bank, t, seed=s) for s, t in enumerate([0.8, 0.3, 0.1])])
    one = machines.denoise_candidates("ls", x, 0.3, bank, [3, 5, 9], threads=1)
    two = machines.denoise_candidates("ls", x, 0.3, bank, [3, 5, 9], threads=2)
    np.testing.assert_array_equal(one, two)
    for i in range(len(x)):
        np.testing.assert_array_equal(machines.denoise_candidates("ls", x[i], 0.3, bank, [3, 5, 9]), one[:, i])
    np.testing.assert_array_equal(machines.denoise_candidates("ls", x, 0.3, bank, [5]), one[1:2])


def test_labels_restrict_the_dictionary():
    bank = many_images(1, n=40, seed=6)
    labels = np.arange(40) % 3
    from elscli.bank import Bank

    b = Bank.from_arrays(np.round((bank + 1) * 127.5).astype(np.uint8), labels)
    x = np.stack([query(b.images, 0.5, seed=s) for s in range(3)])
    got = machines.denoise_candidates("ls", x, 0.5, b, [3, 5], label=[0, 2, -1])
    for i, lab in enumerate([0, 2, -1]):
        sub = b.images if lab < 0 else b.images[labels == lab]
        for k, P in enumerate([3, 5]):
            want = machines.denoise("ls", x[i], 0.5, sub, P)
            assert rel_err(got[k, i], want) < 1e-10


@pytest.mark.parametrize("sizes, message", [([], "no patch sizes"), ([3, 4], "odd positive"),
                                            ([0], "odd positive"), ([3.5], "odd positive")])
def test_bad_sizes_are_refused(sizes, message):
    bank = many_images(1, n=4)
    with pytest.raises(ElscliError, match=message):
        machines.denoise_candidates("ls", np.zeros(bank.shape[1:]), 0.5, bank, sizes)
