"""Pictures and exports of a run: a labelled PNG grid, one PNG per sample, or an NPZ of the finals.

Every file is written atomically through :func:`elscli.h5io.atomic_output`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np

from ..display import to_display
from ..errors import ElscliError
from ..outputs import atomic_output, claim_output, declare_output_dir, refuse_same_files
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


def process_description(run: Run) -> str:
    """The run's reverse process in a few words: ``20 steps`` for the paper's (deterministic DDIM on uniform
    steps of cosine-legacy), else e.g. ``ddim eta=1 on 20 uniform steps of linear`` or ``heun on 10 edm steps
    of linear (19 evaluations)``."""
    p = run.params
    steps = len(run.times) - 1
    sampler, eta, grid = p.get("sampler", "ddim"), float(p.get("eta") or 0.0), p.get("grid", "uniform")
    schedule = run.attrs.get("noise_schedule", p.get("noise_schedule", "cosine-legacy"))
    if (sampler, eta, grid, schedule) == ("ddim", 0.0, "uniform", "cosine-legacy"):
        return f"{steps} steps"
    evals = p.get("evaluations")
    return (f"{sampler}" + (f" eta={eta:g}" if eta else "") + f" on {steps} {grid} steps of {schedule}"
            + (f" ({evals} evaluations)" if evals not in (None, steps) else ""))


def grid_title(run: Run) -> str:
    """The title of a run's grid: machine, where the seeds come from (root seed, or the file of
    ``--from-seeds``), the reverse process (:func:`process_description`), and the locality (``P = 7`` for a
    constant patch size, else the schedule)."""
    p = run.params
    if p.get("from_seeds"):
        seeds = f"seeds of {Path(str(p['from_seeds'])).name}"
    else:
        seeds = f"seed {p.get('seed')}"
    sched = p.get("schedule")
    if run.machine == "is" or sched in (None, ""):
        locality = ""
    elif str(sched).lstrip("+-").isdigit():
        locality = f"P = {int(sched)}"
    else:
        sizes = [int(v) for v in run.patch_sizes]
        locality = f"schedule {sched} (P {sizes[0]} to {sizes[-1]})" if sizes else f"schedule {sched}"
    parts = [machine_description(run.machine, run.params.get("machine_params")), seeds, process_description(run),
             locality]
    return ",  ".join(x for x in parts if x)


def machine_description(machine: str, machine_params: Optional[Dict] = None) -> str:
    """A machine and those of its parameters (a run's recorded ``machine_params``) that differ from the
    machine's defaults: ``is``, ``is temperature=0.5``, ``els wrap``, ``scfdm sigma 0 to 0.5 by step`` (a
    schedule of t: its first and last values).  The patch size is the grid title's locality, not a parameter here."""
    from ..machines import MACHINES, machine_class

    given = machine_params or {}
    if machine not in MACHINES or not given:
        return machine
    defaults = {p.name: p.default for p in machine_class(machine).parameters}
    words = []
    for name in sorted(given):
        value = given[name]
        if name == "patch_size" or (name in defaults and _same(value, defaults[name])):
            continue
        if isinstance(value, bool):
            words.append(name if value else f"no {name}")
        elif isinstance(value, dict) and "values" in value:
            vals = list(value["values"])
            words.append(f"{name} {_num(vals[0])} to {_num(vals[-1])} by step" if len(set(vals)) > 1
                         else f"{name}={_num(vals[0])}")
        else:
            words.append(f"{name}={_num(value)}")
    return " ".join([machine] + words)


def _same(value, default) -> bool:
    try:
        return bool(value == default)
    except Exception:                                 # arrays, schedules: never equal to a scalar default
        return False


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _wrap(text: str, width_px: int, measure) -> List[str]:
    """Words of ``text`` in lines no wider than ``width_px`` (``measure(s)`` gives a string's width)."""
    lines: List[str] = []
    for word in text.split(" "):
        trial = word if not lines else lines[-1] + " " + word
        if lines and measure(trial) <= width_px:
            lines[-1] = trial
        else:
            lines.append(word)
    return [ln.strip() for ln in lines if ln.strip()]


def display_images(run: Run, rows: np.ndarray, channels=None):
    """The finals at ``rows`` as 8-bit display images and a note (:func:`elscli.display.to_display`, on the
    run's bank's value range: ``params["value_range"]``, ``-1,1`` when absent)."""
    return to_display(run.final[rows], value_range=run.params.get("value_range"), channels=channels)


def save_grid_png(run: Run, path: Union[str, os.PathLike], *, columns: Optional[int] = None,
                  tile_pixels: int = 112, max_samples: int = 400, force: bool = True,
                  label_names: Optional[Dict[str, str]] = None, channels=None) -> Path:
    """A labelled grid of the finished samples, written atomically; returns the path.

    Each tile is a final image upscaled (nearest neighbour) to about ``tile_pixels`` pixels, captioned with
    the sample number and label (its class name when ``label_names`` maps labels, as strings, to names);
    the title (:func:`grid_title`), wrapped to the grid's width, gives machine, seeds, steps and locality,
    and further lines say which channels are shown and how when the images are not 1- or 3-channel pixels
    (latents: :mod:`elscli.display`, ``channels`` as there).  At most ``max_samples`` tiles, ``columns`` per
    row (default min(n, 8)).  Raises ElscliError when no sample is finished, for bad ``channels``, or when
    ``path`` exists and not ``force``.
    """
    from PIL import Image, ImageDraw, ImageFont

    rows_idx = np.flatnonzero(run.done)[:max_samples]
    if len(rows_idx) == 0:
        raise ElscliError("the run has no finished samples to draw")
    imgs, note = display_images(run, rows_idx, channels)
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
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength
    text = grid_title(run)
    # at least as wide as the title's longest word, and as its whole line up to 400 pixels: never cut
    longest = max(measure(w, font=font) for w in text.split(" "))
    width = int(max(columns * (tw + pad) + pad, longest + 2 * pad, min(measure(text, font=font) + 2 * pad, 400)))
    title = _wrap(text, width - 2 * pad, lambda t: measure(t, font=font))
    if note:        # which channels are shown, and how (latents)
        title += _wrap(note, width - 2 * pad, lambda t: measure(t, font=font))
    header = len(title) * caption + 6
    canvas = Image.new("RGB", (width, header + grid_rows * (th + caption + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for k, line in enumerate(title):
        draw.text((pad, 2 + k * caption), line, fill="black", font=font)
    names = {str(k): str(v) for k, v in (label_names or {}).items() if v not in (None, "")}
    for k, r in enumerate(rows_idx):
        gy, gx = divmod(k, columns)
        x0 = pad + gx * (tw + pad)
        y0 = header + gy * (th + caption + pad)
        tile = _pil_image(imgs[k]).resize((tw, th), Image.NEAREST)
        canvas.paste(tile.convert("RGB"), (x0, y0))
        lab = int(run.labels[r])
        text = f"#{int(run.sample_ids[r])}"
        if lab >= 0:
            text += f"  {names[str(lab)]}" if str(lab) in names else f"  label {lab}"
        while measure(text, font=font) > tw and len(text) > 4:     # a long class name: cut to the tile
            text = text[:-2] + "…"
        draw.text((x0 + 1, y0 + th + 1), text, fill="black", font=font)
    path = Path(path)
    with atomic_output(path, force) as tmp:
        canvas.save(tmp, format="PNG")
    return path


#: The largest side of an exported PNG (Pillow's and common viewers' practical limit).
MAX_PNG_SIDE = 16384


def export_run(path: Union[str, os.PathLike], output: Union[str, os.PathLike], *, force: bool = False,
               scale: Optional[int] = None, channels=None) -> List[Path]:
    """Write a run file's finished samples as an NPZ or as one PNG per sample; returns the files written.

    ``output`` ending in ``.npz``: one file with ``final`` (S, C, H, W) float32, ``sample_ids``, ``labels``,
    ``seeds``, ``times``, ``patch_sizes`` and ``machine``.  Otherwise a directory (an existing one, or a name
    without an extension, created if its parent exists) with ``sample_000012.png`` per sample (8-bit,
    :func:`to_uint8`; latents and other channel counts as :func:`elscli.display.to_display` shows them,
    ``channels`` as there), upscaled ``scale`` times (nearest neighbour; None: 1).  ``scale`` and ``channels``
    shape PNGs only: with a ``.npz`` output they are refused (they would be ignored).

    Raises ElscliError when the run cannot be read or has no finished sample, ``scale`` is below 1 or makes PNGs
    wider than :data:`MAX_PNG_SIDE`, ``scale`` or
    ``channels`` is given with a ``.npz`` output, ``output`` has another extension
    than ``.npz`` (and is not an existing directory), is a file where a directory is needed, its parent does
    not exist, a file exists without ``force``, or another process is writing the output (its claim is held,
    :mod:`elscli.outputs`; a directory is claimed as a whole).  The directory is made when its first PNG is
    written, so a failure before leaves none behind.
    """
    refuse_same_files([("RUN", path)], [("-o", output)])
    if Path(output).suffix.lower() == ".npz":
        for option, value in (("--scale", scale), ("--channels", channels)):
            if value is not None:        # the NPZ holds the finals as they are: nothing to upscale or choose
                raise ElscliError(f"{option} shapes the PNGs of a directory export; {str(output)!r} is a .npz "
                                  f"file, which holds the finals as they are: drop {option}")
    if scale is None:
        scale = 1
    if isinstance(scale, bool) or int(scale) != scale or scale < 1:
        raise ElscliError(f"--scale must be a whole number of at least 1, got {scale}")
    run = Run.open(path, trajectories=False)
    rows = np.flatnonzero(run.done)
    if rows.size == 0:
        raise ElscliError(f"{str(path)!r} has no finished sample to export")
    output = Path(output)
    if output.suffix.lower() == ".npz":
        arrays = {"final": run.final[rows], "sample_ids": run.sample_ids[rows], "labels": run.labels[rows],
                  "seeds": run.seeds[rows], "times": run.times, "patch_sizes": run.patch_sizes}
        with atomic_output(output, force) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays, machine=np.array(run.machine))
        return [output]
    if output.suffix and not output.is_dir():
        raise ElscliError(f"cannot export to {str(output)!r}: give a .npz file, or a directory (a name without "
                          f"an extension) for one PNG per sample")
    if output.exists() and not output.is_dir():
        raise ElscliError(f"export target {str(output)!r} is a file; give a directory (PNGs) or a .npz path")
    side = max(run.final.shape[-2:]) * int(scale)
    if side > MAX_PNG_SIDE:
        raise ElscliError(f"--scale {scale} makes PNGs of {side if side < 10 ** 12 else f'about 10^{len(str(side)) - 1}'} "
                          f"pixels a side; at most {MAX_PNG_SIDE} (--scale "
                          f"{max(1, MAX_PNG_SIDE // max(run.final.shape[-2:]))} or less for these images)")
    imgs, _ = display_images(run, rows, channels)       # bad --channels: refused before anything is written
    declare_output_dir(output, "-o")
    # the directory is claimed as a whole (.DIR.lock beside it): a concurrent export into it is refused
    with claim_output(output, check=False):
        width = max(6, len(str(int(run.sample_ids.max())))) if len(run) else 6
        targets = [output / f"sample_{int(run.sample_ids[r]):0{width}d}.png" for r in rows]
        clash = [t for t in targets if t.exists()]
        if clash and not force:
            raise ElscliError(f"{str(clash[0])!r} exists; pass --force to overwrite")
        from PIL import Image

        for img, target in zip(imgs, targets):
            pil = _pil_image(img)
            if scale > 1:
                pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
            with atomic_output(target, force=True) as tmp:
                pil.save(tmp, format="PNG")
    return targets
