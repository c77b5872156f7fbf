"""Checking the layout of a figure: its texts (suptitle, titles, axis labels) and its image panels must not
overlap one another nor leave the figure — the fault of a title written over the column numbers."""
from __future__ import annotations

from typing import List


def _boxes(fig):
    """(name, bbox in pixels, owner) of every visible, non-empty text of the figure and of every visible panel."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    out = []
    for k, t in enumerate(fig.texts):
        if t.get_visible() and t.get_text().strip():
            out.append((f"figure text {t.get_text()[:40]!r}", t.get_window_extent(r), None))
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible() or not ax.axison:
            continue
        out.append((f"panel {i}", ax.get_window_extent(r), i))
        for what, t in (("title", ax.title), ("left title", ax._left_title), ("right title", ax._right_title),
                        ("x label", ax.xaxis.label), ("y label", ax.yaxis.label)):
            if t.get_visible() and t.get_text().strip():
                out.append((f"panel {i} {what} {t.get_text()[:30]!r}", t.get_window_extent(r), i))
    return out


def layout_faults(fig, slack: float = 1.0) -> List[str]:
    """Texts that overlap another text or a panel (by more than ``slack`` pixels each way), and texts that
    leave the figure; [] for a clean layout."""
    boxes = _boxes(fig)
    W, H = fig.bbox.width, fig.bbox.height
    faults = []
    for name, b, _ in boxes:
        if name.startswith("panel") and " " not in name[6:]:
            continue
        if b.x0 < -slack or b.y0 < -slack or b.x1 > W + slack or b.y1 > H + slack:
            faults.append(f"{name} leaves the figure")
    for i, (na, a, oa) in enumerate(boxes):
        for nb, b, ob in boxes[i + 1:]:
            both_panels = na.count(" ") == 1 and nb.count(" ") == 1
            if both_panels:
                continue
            w = min(a.x1, b.x1) - max(a.x0, b.x0)
            h = min(a.y1, b.y1) - max(a.y0, b.y0)
            if w > slack and h > slack:
                faults.append(f"{na} overlaps {nb}")
    return faults


def capture_layout_faults(monkeypatch) -> dict:
    """Record {file name: layout_faults} for every figure the analysis modules save from now on."""
    from pathlib import Path

    from elscli.analysis import plots

    found = {}
    real = plots.save_figure

    def checked(fig, path, **kw):
        found[Path(path).name] = layout_faults(fig)
        return real(fig, path, **kw)

    monkeypatch.setattr(plots, "save_figure", checked)
    return found
