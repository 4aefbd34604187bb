"""Peak memory of ``Segmenter.predict`` on a 4000x3000 photo, as a multiple of its pixels.

Issue 26's measure: the process's peak resident memory (``VmHWM``) minus its resident
memory before the call (``VmRSS``), after resetting the peak (``echo 5 >
/proc/self/clear_refs``) and a warm-up call, divided by the decoded RGB image
(3 x 4000 x 3000 bytes = 36 MB). A tiny UNet runs at ``image_size=256``. Three inputs:
a PNG file and a JPEG file (decode included: the total) and the decoded uint8 tensor
(what the Segmenter itself adds: resizing, the model, the full-size mask). Linux only.

Run: ``python benchmarks/bench_predict_memory.py`` (about 20 s on one core).
"""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from catseg.models import UNet
from catseg.predict import Segmenter

HEIGHT, WIDTH = 3000, 4000


def _status(key: str) -> int:
    """A ``/proc/self/status`` entry in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def peak_added(seg: Segmenter, image: object) -> int:
    """Bytes the peak resident memory rises by during one ``predict`` (after a warm-up)."""
    seg.predict(image)
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    before = _status("VmRSS")
    seg.predict(image)
    return _status("VmHWM") - before


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = UNet(3, 1, init_features=8, depth=3)
    seg = Segmenter(model, image_size=256, precision="fp32")
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, size=(HEIGHT // 50, WIDTH // 50, 3), dtype=np.uint8)
    photo = Image.fromarray(coarse).resize((WIDTH, HEIGHT), Image.Resampling.BILINEAR)
    pixels = 3 * HEIGHT * WIDTH
    with tempfile.TemporaryDirectory() as folder:
        png, jpeg = Path(folder) / "photo.png", Path(folder) / "photo.jpg"
        photo.save(png)
        photo.save(jpeg, quality=90)
        tensor = torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1)
        del photo
        print(f"{'input':<22}{'peak added':>12}{'x image':>9}")
        for name, image in (("PNG file", png), ("JPEG file", jpeg), ("uint8 tensor", tensor)):
            added = peak_added(seg, image)
            print(f"{name:<22}{added / 2**20:>9.0f} MiB{added / pixels:>8.1f}x")


if __name__ == "__main__":
    main()
