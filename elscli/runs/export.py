"""Pictures and exports of a run: a labelled PNG grid, one PNG per sample, or an NPZ of the finals.

Every file is written atomically through :func:`elscli.h5io.atomic_output`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Union

import numpy as np

from ..errors import ElscliError
from ..outputs import atomic_output, claim_output
from .file import Run


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] images (N, C, H, W) -> uint8 (N, H, W, C) for display.

    ``round((x + 1) * 127.5)`` clipped to 0..255 (the inverse of :func:`elscli.pixels.u8_to_float` on
    8-bit levels); NaN (unfinished samples) becomes 0.
    """
    img = np.nan_to_num(np.asarray(images, np.float64), nan=-1.0)
    u8 = np.clip(np.round((img + 1.0) * 127.5), 0, 255).astype(np.uint8)
    return np.transpose(u8, (0, 2, 3, 1))


def _pil_image(tile: np.ndarray):
    from PIL import Image

    if tile.shape[2] == 1:
        return Image.fromarray(tile[:, :, 0], mode="L")
    return Image.fromarray(tile[:, :, :3], mode="RGB")


def save_grid_png(run: Run, path: Union[str, os.PathLike], *, columns: Optional[int] = None,
                  tile_pixels: int = 112, max_samples: int = 400, force: bool = True) -> Path:
    """A labelled grid of the finished samples, written atomically; returns the path.

    Each tile is a final image upscaled (nearest neighbour) to about ``tile_pixels`` pixels, captioned with
    the sample number and label; the title gives machine, seed, steps and schedule.  At most
    ``max_samples`` tiles, ``columns`` per row (default min(n, 8)).  Raises ElscliError when no sample is
    finished, or when ``path`` exists and not ``force``.
    """
    from PIL import Image, ImageDraw, ImageFont

    rows_idx = np.flatnonzero(run.done)[:max_samples]
    if len(rows_idx) == 0:
        raise ElscliError("the run has no finished samples to draw")
    imgs = to_uint8(run.final[rows_idx])
    n, H, W, C = imgs.shape
    scale = max(1, int(round(tile_pixels / max(H, W))))
    th, tw = H * scale, W * scale
    columns = columns or min(n, 8)
    grid_rows = -(-n // columns)
    try:
        font = ImageFont.load_default(size=max(11, min(18, tw // 7)))
    except TypeError:
        font = ImageFont.load_default()
    caption = max(14, min(22, tw // 6 + 4))
    pad = 4
    header = caption + 6
    canvas = Image.new("RGB", (columns * (tw + pad) + pad, header + grid_rows * (th + caption + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    p = run.params
    title = f"{run.machine}  seed {p.get('seed')}  {len(run.times) - 1} steps  {p.get('schedule') or ''}"
    draw.text((pad, 2), title.strip(), fill="black", font=font)
    for k, r in enumerate(rows_idx):
        gy, gx = divmod(k, columns)
        x0 = pad + gx * (tw + pad)
        y0 = header + gy * (th + caption + pad)
        tile = _pil_image(imgs[k]).resize((tw, th), Image.NEAREST)
        canvas.paste(tile.convert("RGB"), (x0, y0))
        lab = int(run.labels[r])
        text = f"#{int(run.sample_ids[r])}" + (f"  label {lab}" if lab >= 0 else "")
        draw.text((x0 + 1, y0 + th + 1), text, fill="black", font=font)
    path = Path(path)
    with atomic_output(path, force) as tmp:
        canvas.save(tmp, format="PNG")
    return path


def export_run(path: Union[str, os.PathLike], output: Union[str, os.PathLike], *, force: bool = False,
               scale: int = 1) -> List[Path]:
    """Write a run file's finished samples as an NPZ or as one PNG per sample; returns the files written.

    ``output`` ending in ``.npz``: one file with ``final`` (S, C, H, W) float32, ``sample_ids``, ``labels``,
    ``seeds``, ``times``, ``patch_sizes`` and ``machine``.  Otherwise a directory (created if its parent
    exists) with ``sample_000012.png`` per sample (8-bit, :func:`to_uint8`), upscaled ``scale`` times
    (nearest neighbour).

    Raises ElscliError when the run cannot be read, ``output`` is a file where a directory is needed, its
    parent does not exist, a file exists without ``force``, or another process is writing the output (its
    claim is held, :mod:`elscli.outputs`; a directory is claimed as a whole).
    """
    run = Run.open(path, trajectories=False)
    rows = np.flatnonzero(run.done)
    output = Path(output)
    if output.suffix.lower() == ".npz":
        arrays = {"final": run.final[rows], "sample_ids": run.sample_ids[rows], "labels": run.labels[rows],
                  "seeds": run.seeds[rows], "times": run.times, "patch_sizes": run.patch_sizes}
        with atomic_output(output, force) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays, machine=np.array(run.machine))
        return [output]
    if output.exists() and not output.is_dir():
        raise ElscliError(f"export target {str(output)!r} is a file; give a directory (PNGs) or a .npz path")
    if not output.parent.is_dir():
        raise ElscliError(f"output directory {str(output.parent)!r} does not exist (for {str(output)!r})")
    # the directory is claimed as a whole (.DIR.lock beside it): a concurrent export into it is refused
    with claim_output(output, check=False):
        width = max(6, len(str(int(run.sample_ids.max())))) if len(run) else 6
        targets = [output / f"sample_{int(run.sample_ids[r]):0{width}d}.png" for r in rows]
        clash = [t for t in targets if t.exists()]
        if clash and not force:
            raise ElscliError(f"{str(clash[0])!r} exists; pass --force to overwrite")
        output.mkdir(exist_ok=True)
        from PIL import Image

        imgs = to_uint8(run.final[rows])
        for img, target in zip(imgs, targets):
            pil = _pil_image(img)
            if scale > 1:
                pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
            with atomic_output(target, force=True) as tmp:
                pil.save(tmp, format="PNG")
    return targets
