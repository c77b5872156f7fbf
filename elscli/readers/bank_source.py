"""An existing elscli bank as a source (to take a subset, resize or convert it)."""
from __future__ import annotations

from pathlib import Path

from ._common import RawImages


def read_bank_source(path: Path) -> RawImages:
    from ..bank import Bank

    bank = Bank.open(path)
    source = {"reader": "bank", "path": str(path), "parent_content_hash": bank.content_hash,
              "native_shape": list(bank.shape), "n_source": len(bank)}
    names = bank.source.get("label_names") if isinstance(bank.source, dict) else None
    if names:
        source["label_names"] = names
    return RawImages(images=bank.codes.copy(), labels=bank.labels.copy(), eight_bit=bank.eight_bit, source=source)
