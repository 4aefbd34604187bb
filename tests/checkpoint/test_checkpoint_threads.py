"""Loading checkpoints from several threads leaves the process's warning filters as they were."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

from catseg.checkpoint import load_checkpoint, save_checkpoint
from catseg.models import UNet


def test_parallel_loads_restore_the_warning_filters(tmp_path: Path) -> None:
    model = UNet(3, 1, init_features=4, depth=2).describe(classes=["_background_", "cat"])
    path = save_checkpoint(tmp_path / "cat.pt", model)
    before = list(warnings.filters)
    start = threading.Barrier(8)
    failures: list[BaseException] = []

    def load_many() -> None:
        try:
            start.wait()
            for _ in range(15):
                ckpt = load_checkpoint(path)
                assert ckpt.config.classes == ("_background_", "cat")
        except BaseException as err:  # reported by the main thread
            failures.append(err)

    threads = [threading.Thread(target=load_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    # With unserialised catch_warnings blocks, one thread restores the filter list it saw
    # inside another thread's block, and an "ignore everything" entry outlives both.
    assert warnings.filters == before
