"""The GPU checks, as one script for a lent CUDA machine; writes markdown and logs.

    python benchmarks/gpu_checks.py --out DIR [--quick]

1. the CUDA tests (``pytest -m gpu``), and the whole suite on the GPU machine's newer
   torch with the GPU hidden (as CI runs it);
2. ``bench_unet.py`` and ``bench_predict.py`` on cuda (fp32 against bf16 autocast);
3. ``gpu_bench.py``: fit and Segmenter in fp32/bf16/fp16, Segmenter against smp;
4. a 2-process torchrun of ``fit`` (``gpu_ddp_fit.py``) with nccl, then gloo if nccl fails.

Each step runs in its own process with its own time limit; a failing step is recorded
and the next one runs. The shared data is found through ``CATSEG_SHARED_DATA``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def run(name: str, cmd: list[str], limit: float, out: Path, report: list[str]) -> bool:
    print(f"--> {name}: {' '.join(cmd)}", flush=True)
    start = time.perf_counter()
    try:
        # The CPU suite runs with the GPU hidden, as in CI: its tests pin nothing and
        # expect device="auto" to mean the CPU. The CUDA tests run in their own step.
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""} if name == "suite" else None
        proc = subprocess.run(
            cmd, cwd=REPO, capture_output=True, text=True, timeout=limit, check=False, env=env
        )
        code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code = "timeout"
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    seconds = time.perf_counter() - start
    log = out / f"{name}.log"
    log.write_text(f"$ {' '.join(cmd)}\n{stdout}\n--- stderr ---\n{stderr}", encoding="utf-8")
    ok = code == 0
    print(stdout[-3000:], flush=True)
    if not ok:
        print(f"!! {name} exit {code}\n{stderr[-3000:]}", flush=True)
    report.append(
        f"## {name} ({'ok' if ok else f'FAILED: exit {code}'}, {seconds:.0f} s)\n\n"
        f"`{' '.join(Path(c).name if c == sys.executable else c for c in cmd)}`\n\n"
        f"{stdout.strip()[-6000:]}\n"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    q = ["--quick"] if args.quick else []
    steps: list[tuple[str, list[str], float]] = [
        (
            "cuda-tests",
            [py, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests"],
            100,
        ),
        (
            "suite",
            [
                py,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:benchmark",
                "-n",
                "8",
                "-p",
                "no:cacheprovider",
                "--ignore=tests/docs",
                "tests",
            ],
            240,
        ),
        (
            "bench-unet",
            [
                py,
                "benchmarks/bench_unet.py",
                "--device",
                "cuda",
                "--size",
                "512",
                "--batch",
                "16",
                "--repeats",
                "5",
                *q,
            ],
            90,
        ),
        (
            "bench-predict",
            [py, "benchmarks/bench_predict.py", "--device", "cuda", "--batch-size", "16", *q],
            90,
        ),
        ("gpu-bench", [py, "benchmarks/gpu_bench.py", *q], 150),
        (
            "ddp-nccl",
            [
                py,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc_per_node=2",
                "benchmarks/gpu_ddp_fit.py",
                "--backend",
                "nccl",
            ],
            60,
        ),
    ]
    report: list[str] = []
    for name, cmd, limit in steps:
        if args.only and name not in args.only:
            continue
        ok = run(name, cmd, limit, args.out, report)
        if name == "ddp-nccl" and not ok:
            gloo = [*cmd[:-1], "gloo"]
            run("ddp-gloo", gloo, limit, args.out, report)
        (args.out / "gpu_checks.md").write_text("\n".join(report), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
