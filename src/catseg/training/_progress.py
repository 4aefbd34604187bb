"""Progress reporting: a tqdm bar when tqdm is installed, else a log line per epoch."""

from __future__ import annotations

import logging
from typing import Any

from catseg.training._history import EpochRecord

logger = logging.getLogger("catseg.training")


def _format(record: EpochRecord) -> dict[str, str]:
    out = {"loss": f"{record.train_loss:.4f}"}
    if record.val_loss is not None:
        out["val_loss"] = f"{record.val_loss:.4f}"
    if record.val_miou is not None:
        out["val_mIoU"] = f"{record.val_miou:.4f}"
    out["img/s"] = f"{record.images_per_second:.1f}"
    return out


class Progress:
    """Reports finished epochs; ``active=False`` (processes other than rank 0) is silent."""

    def __init__(self, total: int, initial: int, *, bar: bool, active: bool) -> None:
        self.total = total
        self.bar: Any = None
        if bar and active:
            try:  # tqdm is an optional extra ("progress"): imported only here, lazily
                from tqdm.auto import tqdm
            except ImportError:
                self.bar = None
            else:
                self.bar = tqdm(total=total, initial=initial, desc="fit", unit="epoch")
        self.log = active and self.bar is None

    def update(self, record: EpochRecord) -> None:
        """Show one finished epoch."""
        if self.bar is not None:
            self.bar.set_postfix(_format(record), refresh=False)
            self.bar.update(1)
        elif self.log:
            parts = " ".join(f"{k} {v}" for k, v in _format(record).items())
            logger.info("epoch %d/%d %s (%.1fs)", record.epoch, self.total, parts, record.seconds)

    def close(self) -> None:
        """Close the bar, if any."""
        if self.bar is not None:
            self.bar.close()
