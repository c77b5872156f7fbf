"""The constant patch (identical flat patches stored once, with a count) and the sparse low-noise path.

Both are pure speed devices: results must equal the oracle, and equal the kernel run without them."""
import numpy as np
import pytest

from elscli.kernels import constant_patch
from elscli.kernels.config import MAX_IMAGES_PER_BLOCK, lanes_per_block
from elscli.kernels.shift_softmax import transpose_blocks
from elscli.machines import DEFAULT_OPTIONS, denoise_with_provenance, machine_class

from agreement import assert_independent_of_threads_and_batch, assert_matches_oracle
from oracle import cosine_legacy, rel_err

PATCH_MACHINES = ["ls", "els", "bbels"]


@pytest.fixture(scope="module")
def digits(shared_data):
    """Twelve real MNIST digits (the golden bank), 32x32: most of their small patches are flat black."""
    g = np.load(shared_data / "golden" / "reference-scores-mnist.npz")
    return g["bank_images"][:12].copy()


#: Kernel options under which the constant patch is never split off.
WITHOUT_CONSTANT_PATCH = DEFAULT_OPTIONS.replace(min_constant_fraction=2.0)


def mask_oracle(images, P, value):
    """1 where the P x P patch centred at (u, v) lies inside the image and equals value[c] everywhere."""
    N, C, H, W = images.shape
    r = P // 2
    out = np.zeros((N, H, W), dtype=np.uint8)
    for n in range(N):
        for u in range(r, H - r):
            for v in range(r, W - r):
                patch = images[n, :, u - r:u + r + 1, v - r:v + r + 1]
                out[n, u, v] = all(np.all(patch[c] == value[c]) for c in range(C))
    return out


@pytest.mark.parametrize("C", [1, 3])
@pytest.mark.parametrize("P", [1, 3, 5])
def test_mask_matches_a_direct_check(C, P):
    rng = np.random.default_rng([C, P])
    images = np.full((MAX_IMAGES_PER_BLOCK + 44, C, 9, 8), -1.0, np.float32)      # two blocks
    ink = rng.random(images.shape[:1] + images.shape[2:]) < 0.15
    images[:, 0][ink] = 0.5
    if C == 3:
        images[:, 2, 4, 4] = 1.0          # a channel alone breaks the constant patch
    value = np.full(C, -1.0, np.float32)
    K = lanes_per_block(len(images))
    yt = transpose_blocks(images, np.arange(len(images)), K)
    got = constant_patch.constant_patch_mask(yt, len(images), P, value)
    want = mask_oracle(images, P, value)
    flat = got.transpose(0, 3, 1, 2).reshape(-1, 9, 8)[:len(images)]   # (block, lane) -> image
    np.testing.assert_array_equal(flat, want)
    assert got.reshape(got.shape[0], -1, K).shape[0] == 2


def test_the_constant_value_is_the_background_of_digits(digits):
    np.testing.assert_array_equal(constant_patch.constant_value(digits), [-1.0])


def test_digits_have_mostly_constant_small_patches(digits):
    K = lanes_per_block(len(digits))
    yt = transpose_blocks(digits, np.arange(len(digits)), K)
    const = constant_patch.ConstantPatches(yt, np.arange(len(digits)), 3, machine_class("els").groups(3, 32, 32),
                                           np.array([-1.0], np.float32))
    assert const.active and 0.4 < const.fraction < 0.8
    # every pixel's dictionary (all valid centres) holds the same number of copies
    assert np.all(const.count == const.count[0, 0]) and const.count[0, 0] > 0


@pytest.mark.parametrize("machine", PATCH_MACHINES)
@pytest.mark.parametrize("t", [0.02, 0.1, 0.5, 0.95])
def test_same_results_with_and_without_the_constant_patch(machine, t, digits):
    rng = np.random.default_rng(int(t * 100))
    a, b = cosine_legacy(t)
    x = a * digits[[3, 7]] + b * rng.standard_normal(digits[[3, 7]].shape)
    bank = digits[:10]
    with_const = denoise_with_provenance(machine, x, t, bank, 5)
    without = denoise_with_provenance(machine, x, t, bank, 5, options=WITHOUT_CONSTANT_PATCH)
    assert rel_err(with_const[0], without[0]) < 1e-12
    for name in ("image", "row", "col"):
        np.testing.assert_array_equal(getattr(with_const[1], name), getattr(without[1], name))
    np.testing.assert_allclose(with_const[1].weight, without[1].weight, rtol=1e-9)
    np.testing.assert_allclose(with_const[1].entropy, without[1].entropy, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("machine", PATCH_MACHINES)
@pytest.mark.parametrize("t", [0.01, 0.05])
def test_low_noise_matches_the_oracle(machine, t, digits):
    """At low noise nearly every weight but the flat patch's and a few others is below e^-40: the
    constant patch, the skipped blocks and the sparse chunks all take part, and the result is still exact."""
    rng = np.random.default_rng(int(t * 1000))
    a, b = cosine_legacy(t)
    bank = digits[:6, :, 6:26, 7:25]
    x = a * digits[[8], :, 6:26, 7:25] + b * rng.standard_normal((1, 1, 20, 18))
    assert_matches_oracle(machine, x, bank, t, 3, tol=1e-9, entropy_rtol=1e-7)


@pytest.mark.parametrize("machine", PATCH_MACHINES)
def test_the_flat_patch_dominates_at_its_first_occurrence(machine, digits):
    """A black query at low noise: wherever a flat patch is in the dictionary it dominates, represented by
    its first occurrence in (image, row, col) order — as the oracle, which stores every copy, finds."""
    bank = digits[:4, :, 4:20, 4:20]
    x = -np.ones((1, 1, 16, 16))
    assert_matches_oracle(machine, x, bank, 0.05, 3, tol=1e-9)


@pytest.mark.parametrize("machine", PATCH_MACHINES)
def test_threads_and_batches_do_not_change_low_noise_results(machine, digits):
    rng = np.random.default_rng(3)
    copies = -(-(MAX_IMAGES_PER_BLOCK + 1) // len(digits))
    bank = np.concatenate([digits] * copies)         # two blocks, every patch many times
    a, b = cosine_legacy(0.05)
    x = a * digits[[1, 2]] + b * rng.standard_normal((2, 1, 32, 32))
    one = assert_independent_of_threads_and_batch(machine, x, bank, 0.05, 3)
    assert np.all(one[1].image < len(digits))        # the first copy always represents its duplicates
