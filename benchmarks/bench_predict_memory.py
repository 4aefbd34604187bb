"""Peak memory of ``Segmenter.predict`` on a 4000x3000 photo, as a multiple of its pixels.

Issue 26's measure: the process's peak resident memory (``VmHWM``) minus its resident
memory before the call (``VmRSS``), after resetting the peak (``echo 5 >
/proc/self/clear_refs``) and a warm-up call, divided by the decoded RGB image
(3 x 4000 x 3000 bytes = 36 MB). A tiny UNet runs at ``image_size=256``. Three inputs:
a PNG file and a JPEG file (decode included: the total) and the decoded uint8 tensor
(what the Segmenter itself adds: resizing, the model, the full-size mask). Linux only.

Each input is measured in a fresh process with glibc's mmap threshold fixed at its
default 128 KiB (``MALLOC_MMAP_THRESHOLD_``): every large buffer is then mapped when
allocated and returned when freed, so the figure is the memory really held at the
peak, the same on every run (with the threshold left dynamic, the heap keeps freed
buffers and the figure wanders between 1x and 3.7x for the same code).

Run: ``python benchmarks/bench_predict_memory.py`` (about 30 s on one core). Measured
(2-core EPYC): before issue 26, 7.3x (PNG), 7.3x (JPEG), 5.0x (tensor); now 4.7x,
4.7x, 1.4x. The file figures are the decode's own peak (``load_input`` alone: 4.7x);
of the tensor's 1.4x, 1.0x is the Prediction's copy of the pixels for its overlay.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
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


def measure(kind: str) -> None:
    """One measurement in this (fresh) process: prints bytes added."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    seg = Segmenter(UNet(3, 1, init_features=8, depth=3), image_size=256, precision="fp32")
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, size=(HEIGHT // 50, WIDTH // 50, 3), dtype=np.uint8)
    photo = Image.fromarray(coarse).resize((WIDTH, HEIGHT), Image.Resampling.BILINEAR)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"photo.{kind}"
        if kind == "tensor":
            image: object = torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1)
        else:
            photo.save(path, quality=90)
            image = path
        del photo
        print(peak_added(seg, image))


def main() -> None:
    pixels = 3 * HEIGHT * WIDTH
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    print(f"{'input':<22}{'peak added':>12}{'x image':>9}")
    for name, kind in (("PNG file", "png"), ("JPEG file", "jpg"), ("uint8 tensor", "tensor")):
        out = subprocess.run(
            [sys.executable, __file__, kind], capture_output=True, text=True, check=True, env=env
        )
        added = int(out.stdout.split()[-1])
        print(f"{name:<22}{added / 2**20:>9.0f} MiB{added / pixels:>8.1f}x")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        measure(sys.argv[1])
    else:
        main()
