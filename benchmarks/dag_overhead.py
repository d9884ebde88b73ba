"""Pipeline overhead: a no-op rerun of a finished run, and a dry run of a grid of ~10,000 jobs.

    python benchmarks/dag_overhead.py --workdir .   # after `snakemake --cores all results/transfer_matrix.pdf`
    python benchmarks/dag_overhead.py --jobs 10000  # the large grid only

The large grid is the default config with more optimisers and inits (copies of the defined
ones under new names) until the DAG holds about ``--jobs`` jobs; nothing runs (``--dry-run``).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def snakemake_seconds(workdir: Path, *arguments: str) -> tuple[float, str]:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(workdir), "--cores", "2", *arguments]
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, completed.stdout + completed.stderr


def large_config(jobs: int) -> dict:
    """The default config, its generation grid widened to about ``jobs`` jobs (3 per
    condition: generation, activations, scores; plus the shared ones)."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    generation = config["generation"]
    layers = sum(len(layers) for layers in generation["generators"].values())
    conditions = jobs // 3
    inits = max(1, round((conditions / layers) ** 0.5))
    optimizers = max(1, conditions // (layers * inits))
    base_optimizer = config["optimizers"][generation["optimizers"][0]]
    config["optimizers"].update({f"ngd_lr{index}": {**base_optimizer, "kwargs": {
        **base_optimizer["kwargs"], "lr": 0.5 + index / 100}} for index in range(optimizers)})
    config["inits"].update({f"gaussian_{index}": {"kind": "gaussian",
                                                  "strength": 0.05 + index / 100}
                            for index in range(inits)})
    generation["optimizers"] = [f"ngd_lr{index}" for index in range(optimizers)]
    generation["inits"] = [f"gaussian_{index}" for index in range(inits)]
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="a finished run of the default config")
    parser.add_argument("--jobs", type=int, default=10000)
    args = parser.parse_args()
    if args.workdir:
        seconds, output = snakemake_seconds(args.workdir.resolve(), "results/transfer_matrix.pdf",
                                            "--configfile", str(REPO / "config" / "config.yaml"))
        assert "Nothing to be done" in output, output[-2000:]
        print(f"no-op rerun of {args.workdir}: {seconds:.1f} s (target < 5 s)")
    with tempfile.TemporaryDirectory() as scratch:
        config_path = Path(scratch) / "large.yaml"
        config_path.write_text(yaml.safe_dump(large_config(args.jobs)))
        seconds, output = snakemake_seconds(Path(scratch), "--dry-run", "--configfile",
                                            str(config_path))
        total = re.search(r"^total\s+(\d+)", output, flags=re.MULTILINE)
        planned = int(total.group(1)) if total else -1
        print(f"dry run of {planned} jobs: {seconds:.1f} s (target < 30 s)")


if __name__ == "__main__":
    main()
