"""Run every catseg benchmark script and write ``docs/benchmarks.md``.

Each script prints its own markdown (tables of figures measured side by side with
their baseline in the same run, as ratios); this driver runs them one after another
in fresh processes, so that none disturbs another, and collects what they print
under a header describing the machine and the torch version.

Usage::

    python benchmarks/run_all.py                # full run, writes docs/benchmarks.md
    python benchmarks/run_all.py --quick        # smoke run (CI-sized), prints only
    python benchmarks/run_all.py --only unet predict
    python benchmarks/run_all.py --quick --only losses predict-folder int8
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# (name, script, extra arguments of the full run). CHECKPOINT stands for a temporary
# file: the quality run trains a cats model into it and the predict and int8 runs measure
# it (without it, e.g. under --only int8, bench_int8 trains its own for 3 minutes).
CHECKPOINT = "{checkpoint}"
# the full size (8 x 21 x 512 x 512 logits); fewer repeats than the script's
# default because one Lovász step at this size takes seconds on a small CPU
LOSSES_FULL = ["--repeats", "3"]
# runs that only make sense where bf16 is computed natively (skipped on other CPUs)
NEEDS_NATIVE_BF16 = {"bf16-training"}
SCRIPTS: list[tuple[str, str, list[str]]] = [
    ("unet", "bench_unet.py", []),
    ("data", "bench_data.py", []),
    ("metrics", "bench_metrics.py", []),
    ("losses", "bench_losses.py", LOSSES_FULL),
    ("quality", "quality_cats.py", ["--minutes", "2", "--save", CHECKPOINT]),
    ("predict", "bench_predict.py", ["--checkpoint", CHECKPOINT]),
    ("predict-memory", "bench_predict_memory.py", []),
    ("predict-folder", "bench_predict_folder.py", []),
    ("labelling", "bench_labelling.py", []),
    ("onnx", "bench_onnx.py", []),
    ("int8", "bench_int8.py", ["--checkpoint", CHECKPOINT]),
    ("bf16-training", "bf16_training_quality.py", ["--epochs", "20", "--seeds", "0", "1"]),
]


def _cpu_has_native_bf16() -> bool:
    from catseg._runtime import cpu_has_native_bf16

    return cpu_has_native_bf16()


def machine_description() -> str:
    """One paragraph describing the CPU, core count, GPU and library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from catseg._runtime import cpu_has_native_bf16

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"- CPU: {cpu} ({os.cpu_count()} logical cores visible, "
        f"{torch.get_num_threads()} torch threads; native bf16: {cpu_has_native_bf16()})\n"
        f"- GPU: {gpu}\n"
        f"- Python {platform.python_version()}, torch {torch.__version__}, "
        f"numpy {__import__('numpy').__version__}\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run; do not write the docs")
    parser.add_argument("--only", nargs="*", default=None, help="names of benchmarks to run")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args()

    sections: list[str] = []
    failures: list[str] = []
    trained = Path(tempfile.mkdtemp(prefix="catseg-bench-")) / "cats.pt"
    native_bf16 = torch.cuda.is_available() or _cpu_has_native_bf16()
    for name, script, extra in SCRIPTS:
        if args.only and name not in args.only:
            continue
        if name in NEEDS_NATIVE_BF16 and not native_bf16 and not args.quick:
            sections.append(
                f"## {name}\n\nSkipped: this CPU has no native bf16, so torch emulates it "
                "(tens of times slower than fp32; see the unet section), and a bf16 training "
                "run would take hours. Figures from CPUs with native bf16 are on the other "
                "benchmark pages.\n"
            )
            continue
        if not args.quick and CHECKPOINT in extra and name != "quality" and not trained.exists():
            extra = [a for a in extra if a != "--checkpoint" and a != CHECKPOINT]
        extra = [str(trained) if a == CHECKPOINT else a for a in extra]
        cmd = [sys.executable, str(HERE / script), *(["--quick"] if args.quick else extra)]
        print(f"--> {' '.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        print(proc.stdout, flush=True)
        if proc.returncode != 0:
            print(proc.stderr[-4000:], file=sys.stderr, flush=True)
            failures.append(name)
            continue
        sections.append(
            f"## {name}\n\n`python benchmarks/{script} "
            f"{' '.join(extra).replace(str(trained), 'cats.pt')}`"
            f" — {seconds:.0f} s\n\n{proc.stdout.strip()}\n"
        )

    if failures:
        print(f"failed: {', '.join(failures)}", file=sys.stderr)
    if args.quick:
        return 1 if failures else 0
    today = dt.date.today().isoformat()
    page = (
        "# Benchmarks\n\n"
        "![Speed-ups of catseg's fast paths over their baselines, measured in one run]"
        "(images/benchmarks.png)\n\n"
        "Generated by `python benchmarks/run_all.py` on "
        f"{today}. Every figure is measured side by side with its baseline in the same run "
        "and reported as a ratio, because absolute numbers on shared machines are noisy. "
        "The chart is drawn from this page by `python docs/make_figures.py --only chart`. "
        "Figures from other machines: [a 2-core AMD EPYC with native bf16]"
        "(benchmarks-epyc-bf16.md), [a 2-core AMD EPYC with AVX2 only]"
        "(benchmarks-epyc-avx2.md), [a 2-core Xeon with AMX](benchmarks-xeon-amx.md), "
        "[an NVIDIA H200](benchmarks-gpu-h200.md).\n\n"
        f"{machine_description()}\n" + "\n".join(sections)
    )
    args.output.write_text(page, encoding="utf-8")
    print(f"wrote {args.output}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
