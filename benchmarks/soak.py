"""Soak test (not in CI): the test config run again and again while jobs are killed at random.

An undisturbed run goes first. Then, in another folder, Snakemake is started repeatedly; after
a random delay one running job (or, now and then, Snakemake itself) is killed with SIGKILL, and
the next start resumes (``--rerun-incomplete``). Once a run completes, every HDF5 dataset and
Parquet table is compared with the undisturbed run's. Prints kills survived and files lost or
different; exits non-zero if any.

    python benchmarks/soak.py --kills 10 --seed 0
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil

from metamers import store

REPO = Path(__file__).resolve().parents[1]


def snakemake(workdir: Path, config: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(workdir), "--cores", "2", "--rerun-incomplete",
               "--configfile", str(config)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill_something(process: subprocess.Popen, rng: random.Random) -> str | None:
    """SIGKILL one of Snakemake's running jobs (one time in five, Snakemake itself); returns
    what was killed, or None if the chosen job ended first."""
    jobs = [child for child in psutil.Process(process.pid).children(recursive=True)
            if "python" in child.name()]
    if rng.random() < 0.2 or not jobs:
        process.send_signal(signal.SIGKILL)
        return "snakemake"
    victim = rng.choice(jobs)
    try:
        description = " ".join(victim.cmdline())[-80:]
        victim.send_signal(signal.SIGKILL)
    except psutil.Error:  # the job ended in between
        return None
    return description


def outputs(root: Path) -> dict[str, object]:
    """Every HDF5 file's dataset hashes and every Parquet table, by path."""
    found: dict[str, object] = {}
    for path in sorted(root.rglob("*.h5")):
        found[str(path.relative_to(root))] = store.dataset_hashes(path)
    for path in sorted(root.rglob("*.parquet")):
        found[str(path.relative_to(root))] = pd.read_parquet(path)
    return found


def same(first: object, second: object) -> bool:
    """Equal results; tables are compared without wall-time columns (measurements)."""
    if isinstance(first, pd.DataFrame):
        results = "^(?!wall_time)"
        return (isinstance(second, pd.DataFrame)
                and first.filter(regex=results).equals(second.filter(regex=results)))
    return first == second


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10, help="kills before letting it finish")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-delay", type=float, default=20.0, help="seconds before a kill")
    parser.add_argument("--config", type=Path, default=REPO / "config" / "test.yaml")
    arguments = parser.parse_args()
    rng = random.Random(arguments.seed)
    with tempfile.TemporaryDirectory() as scratch:
        undisturbed, disturbed = Path(scratch) / "undisturbed", Path(scratch) / "disturbed"
        started = time.perf_counter()
        if snakemake(undisturbed, arguments.config).wait() != 0:
            print("the undisturbed run failed", file=sys.stderr)
            return 2
        print(f"undisturbed run: {time.perf_counter() - started:.0f} s")
        kills = 0
        while True:
            process = snakemake(disturbed, arguments.config)
            if kills < arguments.kills:
                time.sleep(rng.uniform(1.0, arguments.max_delay))
                victim = kill_something(process, rng) if process.poll() is None else None
                if victim:
                    kills += 1
                    print(f"kill {kills}: {victim}", flush=True)
            if process.wait() == 0:  # finished (before any further kill could land)
                break
        expected, found = outputs(undisturbed), outputs(disturbed)
        lost = sorted(set(expected) - set(found))
        different = sorted(path for path in set(expected) & set(found)
                           if not same(expected[path], found[path]))
        print(f"kills survived: {kills}; output files: {len(expected)}; lost: {len(lost)}; "
              f"different: {len(different)}")
        for path in lost + different:
            print(f"  {path}")
        return 1 if lost or different else 0


if __name__ == "__main__":
    sys.exit(main())
