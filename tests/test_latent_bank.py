"""Latent banks (issue 16): float data of any channel count stored as is (`build-bank --value-range none`), run
through `sample` and `compare` on the command line; PNGs show the first three channels (or --channels)."""
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from elscli import reference as R
from elscli.bank import Bank
from elscli.display import to_display
from elscli.errors import ElscliError
from elscli.machines import denoise
from elscli.noise import NOISE_SCHEDULES
from elscli.runs import Run

C, H, W = 4, 16, 16
P = 5
# per-channel scale and offset: latents are not on [-1, 1] (a VAE's are roughly unit variance, some shifted)
SCALE = np.array([1.0, 0.6, 1.8, 2.5])[:, None, None]
OFFSET = np.array([0.0, -0.4, 0.3, 0.7])[:, None, None]


def smooth_latents(n, seed):
    """n random smooth fields (n, 4, 16, 16) float32: Gaussian-filtered white noise (sigma 2 px, periodic),
    each channel standardised then scaled and shifted by SCALE, OFFSET."""
    z = np.random.default_rng(seed).standard_normal((n, C, H, W))
    f = gaussian_filter(z, sigma=(0, 0, 2, 2), mode="wrap")
    f = (f - f.mean(axis=(0, 2, 3), keepdims=True)) / f.std(axis=(0, 2, 3), keepdims=True)
    return (f * SCALE + OFFSET).astype(np.float32)


def cli(*args, cwd, check=True):
    p = subprocess.run([sys.executable, "-m", "elscli", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                       timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"elscli {' '.join(map(str, args))} failed ({p.returncode}): {p.stderr}")
    return p


def one_line_error(p, needle):
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(lines) == 1 and lines[0].startswith("elscli: error:"), p.stderr
    assert needle in lines[0], lines[0]


def test_four_channel_latent_bank_through_build_bank_sample_compare(tmp_path):
    """latents.npy (24 smooth 4-channel fields, values far outside [-1, 1]) -> build-bank --value-range none
    (stored bitwise as float32) -> a reference recorded from bbELS on the bank (a stand-in network, DDPM steps
    on the linear schedule) -> `sample --from-seeds` with bbELS and with IS -> `compare`: bbELS reproduces the
    reference (r2 ~ 1), IS does not do better; the finals keep the latents' scale (nothing clipped)."""
    lat = smooth_latents(24, 0)
    assert lat.min() < -3 and lat.max() > 3
    np.save(tmp_path / "latents.npy", lat)
    p = cli("build-bank", "latents.npy", "-o", "lat.h5", "--value-range", "none", "--size", 0, "--json",
            cwd=tmp_path)
    summary = json.loads(p.stdout)
    assert summary["image_shape"] == [C, H, W] and summary["dtype"] == "float32"
    bank = Bank.open(tmp_path / "lat.h5")
    assert bank.value_range == "none" and bank.scale == 1.0 and bank.offset == 0.0
    np.testing.assert_array_equal(bank.images, lat)                 # stored as is: no range map, no quantisation

    seeds = np.random.default_rng(5).standard_normal((4, C, H, W)).astype(np.float32)

    def eps_fn(x, t, labels):
        a, b = NOISE_SCHEDULES["linear"](t)
        return (x - a * denoise("bbels", x, t, bank, P, noise_schedule="linear")) / b

    R.record(eps_fn, seeds, path=tmp_path / "net.npz", noise_schedule="linear", steps=6, eta=1.0, noise_seed=2)
    cli("sample", "--bank", "lat.h5", "--from-seeds", "net.npz", "--patch-size", P, "-o", "bbels.h5",
        "--png", "grid.png", "-q", cwd=tmp_path)
    cli("sample", "--bank", "lat.h5", "--from-seeds", "net.npz", "--machine", "is", "-o", "is.h5", "-q", cwd=tmp_path)
    run = Run.open(tmp_path / "bbels.h5")
    assert run.params["value_range"] == "none" and run.final.shape == (4, C, H, W)
    assert run.params["eta"] == 1.0 and run.noise is not None
    assert np.abs(run.final).max() > 1.5                            # the latents' scale, not clipped to [-1, 1]
    res = json.loads(cli("compare", "net.npz", "bbels.h5", "--baseline", "is.h5", "--json", "--plot", "figs",
                         cwd=tmp_path).stdout)
    side = np.asarray(Image.open(tmp_path / "figs" / "side-by-side.png"))
    assert side.shape[0] > 100 and side[..., :3].std() > 10       # latents drawn (first three channels), not blank
    cli("mosaic", "bbels.h5", "--bank", "lat.h5", "-o", "mosaics", cwd=tmp_path)   # provenance of any C
    assert len(list((tmp_path / "mosaics").glob("*.png"))) == 4
    assert res["inputs"]["bbels"]["r2"]["min"] > 0.9999 and res["inputs"]["is"]["r2"]["median"] < 0.5
    ref = R.read(tmp_path / "net.npz")
    diff = np.abs(run.final - ref.final).max()
    assert diff < 1e-3, diff
    # the grid: first three channels as RGB, with a note; --channels each: every channel in grey
    grid = Image.open(tmp_path / "grid.png")
    assert grid.mode == "RGB" and grid.size[0] > 4 * W
    u8, note = to_display(run.final, value_range="none")
    assert u8.shape == (4, H, W, 3) and "channels 0,1,2 of 4 as RGB" in note and "percentile" in note
    cli("export", "bbels.h5", "-o", "each", "--channels", "each", cwd=tmp_path)
    tile = np.asarray(Image.open(tmp_path / "each" / "sample_000000.png"))
    assert tile.shape == (H, C * W)
    one = np.asarray(Image.open(next((tmp_path / "each").glob("*.png"))))
    assert one.std() > 10                                            # not a flat tile


def test_latent_bank_bad_input(tmp_path):
    """--value-range none with 8-bit data, a bad --channels: one line, exit 1, nothing written."""
    np.save(tmp_path / "u8.npy", np.zeros((3, 4, 8, 8), np.uint8))
    one_line_error(cli("build-bank", "u8.npy", "-o", "b.h5", "--value-range", "none", "--size", 0, cwd=tmp_path,
                       check=False), "--value-range none keeps float data")
    assert not list(tmp_path.glob("b.h5*"))
    np.save(tmp_path / "lat.npy", smooth_latents(6, 1))
    cli("build-bank", "lat.npy", "-o", "lat.h5", "--value-range", "none", "--size", 0, cwd=tmp_path)
    for spec, needle in (("0,1", "one (grey) or three (RGB)"), ("7", "channel 7 does not exist"),
                         ("red", "--channels takes 'each'")):
        p = cli("sample", "--bank", "lat.h5", "-n", 1, "--steps", 2, "--patch-size", 3, "-o", "r.h5",
                "--png", "g.png", "--channels", spec, "-q", cwd=tmp_path, check=False)
        one_line_error(p, needle)
        assert not list(tmp_path.glob("r.h5*")) and not (tmp_path / "g.png").exists()
    # without --value-range none the 4-channel float data is refused as images
    one_line_error(cli("build-bank", "lat.npy", "-o", "px.h5", "--size", 0, cwd=tmp_path, check=False),
                   "no channel axis of size 1 or 3; for latents of any channel count pass --value-range none")
    assert not list(tmp_path.glob("px.h5*"))


def test_from_arrays_latents_kept_as_is():
    lat = smooth_latents(3, 2)
    bank = Bank.from_arrays(lat, value_range="none")
    assert bank.shape == (C, H, W) and bank.value_range == "none"
    np.testing.assert_array_equal(bank.images, lat)
    with pytest.raises(ElscliError, match="8-bit"):
        Bank.from_arrays(np.zeros((2, 4, 8, 8), np.uint8), value_range="none")
    with pytest.raises(ElscliError, match="1 or 3 channels"):
        Bank.from_arrays(lat)
