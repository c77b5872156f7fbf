"""The checks every kernel test makes: elscli's x0_hat and provenance against the NumPy oracle, and bitwise
independence of the thread count and the batch."""
import numpy as np

from elscli.machines import denoise_with_provenance

from oracle import cosine_legacy, oracle_denoise, rel_err
from threads import require_two_threads

EXACT = 1e-6   # elscli's definition of exact: max |diff| / max |value| per image


def assert_matches_oracle(machine, x, bank, t, P, *, tol=EXACT, entropy_rtol=1e-9, options=None):
    """x0_hat within ``tol`` (relative, per image), the same dominant patch, its weight to 1e-9 and the
    entropy to ``entropy_rtol``, for every query in x (B, C, H, W); ``options``: the machines'
    KernelOptions (None: the defaults)."""
    a, b = cosine_legacy(t)
    x0, prov = denoise_with_provenance(machine, x, t, bank, P, options=options)
    for k in range(x.shape[0]):
        want, wprov = oracle_denoise(machine, x[k], bank, a, b, P)
        assert rel_err(x0[k], want) < tol, (machine, t, P, k)
        np.testing.assert_array_equal(prov.image[k], wprov["image"])
        np.testing.assert_array_equal(prov.row[k], wprov["row"])
        np.testing.assert_array_equal(prov.col[k], wprov["col"])
        np.testing.assert_allclose(prov.weight[k], wprov["weight"], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(prov.entropy[k], wprov["entropy"], rtol=entropy_rtol, atol=1e-9)


PROVENANCE_FIELDS = ("image", "row", "col", "weight", "entropy")


def assert_independent_of_threads_and_batch(machine, x, bank, t, P, *, options=None):
    """x0_hat and provenance bitwise the same with 1 and 2 threads (really two: skipped, with the reason, when
    Numba cannot run them), and for each query alone as in the batch x (B, C, H, W); returns the 1-thread
    result."""
    require_two_threads()
    one = denoise_with_provenance(machine, x, t, bank, P, threads=1, options=options)
    two = denoise_with_provenance(machine, x, t, bank, P, threads=2, options=options)
    np.testing.assert_array_equal(one[0], two[0])
    for name in PROVENANCE_FIELDS:
        np.testing.assert_array_equal(getattr(one[1], name), getattr(two[1], name))
    for k in range(x.shape[0]):
        alone = denoise_with_provenance(machine, x[k], t, bank, P, threads=2, options=options)
        np.testing.assert_array_equal(one[0][k], alone[0])
        for name in PROVENANCE_FIELDS:
            np.testing.assert_array_equal(getattr(one[1], name)[k], getattr(alone[1], name))
    return one
