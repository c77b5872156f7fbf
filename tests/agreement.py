"""The one check every kernel test makes: elscli's x0_hat and provenance against the NumPy oracle."""
import numpy as np

from elscli.machines import denoise_with_provenance

from oracle import cosine_legacy, oracle_denoise, rel_err

EXACT = 1e-6   # elscli's definition of exact: max |diff| / max |value| per image


def assert_matches_oracle(machine, x, bank, t, P, *, tol=EXACT, entropy_rtol=1e-9):
    """x0_hat within ``tol`` (relative, per image), the same dominant patch, its weight to 1e-9 and the
    entropy to ``entropy_rtol``, for every query in x (B, C, H, W)."""
    a, b = cosine_legacy(t)
    x0, prov = denoise_with_provenance(machine, x, t, bank, P)
    for k in range(x.shape[0]):
        want, wprov = oracle_denoise(machine, x[k], bank, a, b, P)
        assert rel_err(x0[k], want) < tol, (machine, t, P, k)
        np.testing.assert_array_equal(prov.image[k], wprov["image"])
        np.testing.assert_array_equal(prov.row[k], wprov["row"])
        np.testing.assert_array_equal(prov.col[k], wprov["col"])
        np.testing.assert_allclose(prov.weight[k], wprov["weight"], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(prov.entropy[k], wprov["entropy"], rtol=entropy_rtol, atol=1e-9)
