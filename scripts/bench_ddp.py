"""Data-parallel scaling on this machine: training images/s of the teacher with 1 process (all threads) and
with N processes under torchrun (gloo), the same global batch, training steps only.

    python scripts/bench_ddp.py [--processes 1 2] [--steps 30] [--kind teacher] [--json docs/ddp-scaling.json]

Needs the prepared sprites (python -m pokedemo.data prepare). On a GPU machine add `--device cuda` (NCCL).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(processes: int, args, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as work:
        train = ["-m", "pokedemo.train", args.kind, "--epochs", "1", "--steps-per-epoch", str(args.steps),
                 "--val-episodes", "5", "--threads", str(threads), "--device", args.device, "--run-dir",
                 f"{work}/run", "--out", f"{work}/out.safetensors"]
        if args.kind == "student":
            train += ["--teacher", "checkpoints/teacher.safetensors"]
        launcher = [] if processes == 1 else ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                                              str(processes)]
        command = [sys.executable, *launcher, *train]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True,
                              env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    record = next(json.loads(line) for line in done.stdout.splitlines() if line.startswith("{"))
    return {"processes": processes, "threads_per_process": threads, "images_per_s": record["train_images_per_s"],
            "command": " ".join(["python", *launcher, *train[:2], args.kind, "..."])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--kind", default="teacher", choices=["teacher", "student"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    rows = [run(n, args, max(1, cores // n)) for n in args.processes]
    report = {"command": "python scripts/bench_ddp.py " + " ".join(sys.argv[1:]), "cores": cores, "rows": rows}
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
