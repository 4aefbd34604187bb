"""Peak memory of ``Segmenter.predict`` on a 4000x3000 photo, as a multiple of its pixels.

Issue 26's measure: the process's peak resident memory (``VmHWM``) minus its resident
memory before the call (``VmRSS``), after resetting the peak (``echo 5 >
/proc/self/clear_refs``) and a warm-up call, divided by the decoded RGB image
(3 x 4000 x 3000 bytes = 36 MB). A tiny UNet runs at ``image_size=256``. Three inputs:
a PNG file and a JPEG file (decode included: the total) and the decoded uint8 tensor
(what the Segmenter itself adds: resizing, the model, the full-size mask). Linux only.

Each input is measured in a fresh process twice: with glibc's mmap threshold fixed at
its default 128 KiB (``MALLOC_MMAP_THRESHOLD_``: every large buffer is mapped when
allocated and returned when freed, so the figure is the memory really held at the peak,
the same on every run) and with glibc's dynamic default (the heap keeps freed buffers
and the figure depends on the allocator's history).

Run: ``python benchmarks/bench_predict_memory.py`` (about a minute on one core); it is
part of ``run_all.py``, whose page (``docs/benchmarks.md``) has the figures. Before
issue 26 (fixed threshold, 2-core EPYC): 7.3x (PNG), 7.3x (JPEG), 5.0x (tensor).
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
from _common import machine_description
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


def _run(kind: str, env: dict[str, str]) -> int:
    out = subprocess.run(
        [sys.executable, __file__, kind], capture_output=True, text=True, check=True, env=env
    )
    return int(out.stdout.split()[-1])


def main() -> None:
    pixels = 3 * HEIGHT * WIDTH
    fixed = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    dynamic = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    print("### Peak memory of `Segmenter.predict` on a 4000×3000 photo (target ≤ 4×)\n")
    print(machine_description() + "\n")
    print("Peak resident memory added by one call (after a warm-up), as a multiple of the")
    print("decoded RGB image (36 MB); tiny UNet at `image_size=256`; each figure in a fresh")
    print("process, with glibc's mmap threshold fixed at 128 KiB and, for comparison, left")
    print("dynamic (glibc's default, where freed buffers stay in the heap and the figure")
    print("depends on the allocator's history).\n")
    print("| input | fixed threshold | per image | glibc default | per image |")
    print("|---|---:|---:|---:|---:|")
    for name, kind in (("PNG file", "png"), ("JPEG file", "jpg"), ("uint8 tensor", "tensor")):
        a, b = _run(kind, fixed), _run(kind, dynamic)
        print(
            f"| {name} | {a / 2**20:.0f} MiB | {a / pixels:.1f}× "
            f"| {b / 2**20:.0f} MiB | {b / pixels:.1f}× |"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("png", "jpg", "tensor"):
        measure(sys.argv[1])
    else:
        main()
