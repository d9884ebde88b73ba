"""A pipeline run's time per rule and its wall time, for one revision or two side by side.

    python benchmarks/profile_run.py run HEAD                      # the default, fresh folder
    python benchmarks/profile_run.py run main HEAD --cores 2       # A then B, same --cores
    python benchmarks/profile_run.py run HEAD --configfile config/test.yaml --target all
    python benchmarks/profile_run.py parse .snakemake/log/*.snakemake.log   # a finished run
    python benchmarks/profile_run.py imports HEAD WORKTREE         # start-up of each job kind

``run`` copies each revision's tracked files (``git archive``; ``WORKTREE``: this checkout's
tracked and untracked, not ignored, files) into a fresh folder, runs Snakemake there with that
copy's ``src`` first on ``PYTHONPATH`` and prints the table parsed from Snakemake's own log
(``.snakemake/log/``): per rule, jobs, summed job seconds, mean and longest job, then the wall
time. Job times are finish minus start as Snakemake logs them (one-second resolution). With
two revisions the tables are joined, with B/A ratios.

``imports`` times, per ``workflow/scripts/*.py``, a fresh interpreter running only that
script's ``import`` lines: what every job of that rule pays before its first useful line
(imports made later inside functions, and Snakemake's own preamble, are not counted).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKTREE = "WORKTREE"
LABELS = ["A", "B"]
STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
STARTED = re.compile(r"^(?:local)?rule (\S+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
FINISHED = re.compile(r"^Finished job(?:id:)? (\d+)")
FAILED = re.compile(r"^Error in rule (\S+):$")


@dataclass
class Job:
    """One job of a Snakemake log: its rule, start and (if it finished) finish time."""

    rule: str
    started: datetime
    finished: datetime | None = None

    @property
    def seconds(self) -> float | None:
        return (self.finished - self.started).total_seconds() if self.finished else None


def parse_log(text: str) -> dict[int, Job]:
    """Jobs by job id from a Snakemake log (``.snakemake/log/*.snakemake.log``).

    A job starts at the time stamp line before ``rule <name>:`` (or ``localrule``) and its
    ``jobid:`` line; it ends at the stamp before ``Finished jobid: <id>`` (Snakemake 8-9) or
    ``Finished job <id>.`` (7). Failed or unfinished jobs keep ``finished=None``.
    """
    jobs: dict[int, Job] = {}
    stamp: datetime | None = None
    pending_rule: str | None = None
    for line in text.splitlines():
        if match := STAMP.match(line):
            stamp = datetime.strptime(match.group(1), "%a %b %d %H:%M:%S %Y")
        elif match := STARTED.match(line):
            pending_rule = match.group(1)
        elif (match := JOBID.match(line)) and pending_rule and stamp:
            jobs[int(match.group(1))] = Job(pending_rule, stamp)
            pending_rule = None
        elif (match := FINISHED.match(line)) and stamp and int(match.group(1)) in jobs:
            jobs[int(match.group(1))].finished = stamp
        elif FAILED.match(line):
            pending_rule = None  # its jobid line names a started job, not a new one
    return jobs


def rule_table(jobs: dict[int, Job]) -> dict[str, dict[str, float]]:
    """Per rule, in order of first start: jobs, summed, mean and longest job seconds (finished
    jobs only), and failed (unfinished) jobs."""
    table: dict[str, dict[str, float]] = {}
    for job in sorted(jobs.values(), key=lambda job: job.started):
        row = table.setdefault(job.rule, {"jobs": 0, "total_s": 0.0, "max_s": 0.0,
                                          "unfinished": 0})
        if job.seconds is None:
            row["unfinished"] += 1
            continue
        row["jobs"] += 1
        row["total_s"] += job.seconds
        row["max_s"] = max(row["max_s"], job.seconds)
    for row in table.values():
        row["mean_s"] = row["total_s"] / row["jobs"] if row["jobs"] else 0.0
    return table


def wall_seconds(jobs: dict[int, Job]) -> float:
    """First job start to last job finish."""
    finishes = [job.finished for job in jobs.values() if job.finished]
    if not finishes:
        return 0.0
    return (max(finishes) - min(job.started for job in jobs.values())).total_seconds()


def format_tables(tables: list[dict[str, dict[str, float]]], labels: list[str],
                  walls: list[float]) -> str:
    """One table (or two joined, with B/A ratios of summed job time) as aligned text."""
    rules = list(dict.fromkeys(rule for table in tables for rule in table))
    header = f"{'rule':24}" + "".join(
        f"{label + ' jobs':>18}{'total s':>9}{'mean s':>8}{'max s':>7}" for label in labels)
    if len(tables) == 2:
        header += f"{'B/A':>7}"
    lines = [header]
    for rule in [*rules, "all rules"]:
        line = f"{rule:24}"
        totals = []
        for table in tables:
            rows = table.values() if rule == "all rules" else [table.get(rule)]
            rows = [row for row in rows if row]
            jobs = sum(row["jobs"] for row in rows)
            total = sum(row["total_s"] for row in rows)
            failed = sum(row["unfinished"] for row in rows)
            longest = max((row["max_s"] for row in rows), default=0.0)
            totals.append(total)
            count = f"{jobs}" + (f" ({failed} unfinished)" if failed else "")
            line += (f"{count:>18}{total:9.0f}{total / jobs if jobs else 0:8.1f}{longest:7.0f}")
        if len(tables) == 2:
            line += f"{totals[1] / totals[0]:7.2f}" if totals[0] else f"{'-':>7}"
        lines.append(line)
    lines.append("wall, first start to last finish: " + ", ".join(
        f"{label} {wall:.0f} s" for label, wall in zip(labels, walls)))
    return "\n".join(lines)


def legend(sources: list) -> str:
    return "\n".join(f"{label}: {source}" for label, source in zip(LABELS, sources))


def copy_tree(revision: str, destination: Path) -> None:
    """The revision's tracked files (or, for ``WORKTREE``, this checkout's tracked and
    untracked, not ignored, files) in ``destination``; no results, resources or logs."""
    destination.mkdir(parents=True)
    if revision == WORKTREE:
        listed = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"],
                                cwd=REPO, capture_output=True, check=True).stdout
        for name in filter(None, listed.decode().split("\0")):
            if (REPO / name).is_file():
                (destination / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / name, destination / name)
        return
    archive = subprocess.run(["git", "archive", "--format=tar", revision], cwd=REPO,
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(destination, filter="data")


def run_revision(revision: str, folder: Path, snakemake_arguments: list[str]
                 ) -> tuple[dict[int, Job], float]:
    """Run Snakemake on a fresh copy of ``revision`` in ``folder``; its jobs and wall time."""
    copy_tree(revision, folder)
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-m", "snakemake", *snakemake_arguments],
                               cwd=folder, env=_environment(folder), capture_output=True,
                               text=True, check=False)
    seconds = time.perf_counter() - started
    logs = sorted((folder / ".snakemake" / "log").glob("*.snakemake.log"))
    if completed.returncode or not logs:
        print(completed.stderr[-3000:], file=sys.stderr)
        if not logs:
            raise SystemExit(f"{revision}: Snakemake failed before writing a log")
    return parse_log(logs[-1].read_text()), seconds


def _environment(tree: Path) -> dict[str, str]:
    """This environment, with ``tree``'s library first on ``PYTHONPATH``."""
    return {**os.environ, "PYTHONPATH": str(tree / "src")}


def script_imports(script: Path) -> str:
    """A workflow script's import statements, without ``sys``'s (the log redirection)."""
    statements = [line for line in script.read_text().splitlines()
                  if line.startswith(("import ", "from ")) and line != "import sys"]
    return "\n".join(statements)


def import_seconds(tree: Path, code: str, repeat: int) -> tuple[float, float]:
    """Median wall and CPU (user + system) seconds of a fresh interpreter running ``code``
    with ``tree/src`` first on ``PYTHONPATH``."""
    env = _environment(tree)
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def imports_table(trees: dict[str, Path], repeat: int) -> str:
    """Per workflow script (job kind), its import time in each tree, CPU then wall."""
    scripts = sorted({path.name for tree in trees.values()
                      for path in (tree / "workflow" / "scripts").glob("*.py")})
    lines = [f"{'job kind (script)':28}" + "".join(f"{label + ' cpu s':>10}{'wall s':>8}"
                                                   for label in trees)]
    for name in scripts:
        line = f"{name.removesuffix('.py'):28}"
        for tree in trees.values():
            script = tree / "workflow" / "scripts" / name
            wall, cpu = import_seconds(tree, script_imports(script), repeat) \
                if script.exists() else (float("nan"), float("nan"))
            line += f"{cpu:10.2f}{wall:8.2f}"
        lines.append(line)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run revisions (A, then B) in fresh folders")
    run.add_argument("revisions", nargs="+", help=f"git revisions, or {WORKTREE}; at most 2")
    run.add_argument("--cores", default="2")
    run.add_argument("--target", default="results/transfer_matrix.pdf")
    run.add_argument("--configfile", help="relative to the copied tree, e.g. config/test.yaml")
    run.add_argument("--keep", type=Path, help="run in this folder and keep it (else a temp)")
    parse = commands.add_parser("parse", help="tables of finished runs' Snakemake logs")
    parse.add_argument("logs", nargs="+", type=Path, help="one or two .snakemake.log files")
    imports = commands.add_parser("imports", help="import time of each workflow script")
    imports.add_argument("revisions", nargs="+", help=f"git revisions, or {WORKTREE}")
    imports.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if len(args.logs if args.command == "parse" else args.revisions) > len(LABELS):
        parser.error("at most two runs side by side")
    if args.command == "parse":
        runs = [parse_log(path.read_text()) for path in args.logs]
        print(legend(args.logs))
        print(format_tables([rule_table(jobs) for jobs in runs], LABELS[:len(runs)],
                            [wall_seconds(jobs) for jobs in runs]))
        return
    print(legend(args.revisions))
    with tempfile.TemporaryDirectory(prefix="profile_run_") as scratch:
        base = args.keep if args.command == "run" and args.keep else Path(scratch)
        folders = {label: base / f"{label}_{revision.replace('/', '_')}"
                   for label, revision in zip(LABELS, args.revisions)}
        if args.command == "imports":
            for revision, folder in zip(args.revisions, folders.values()):
                copy_tree(revision, folder)
            print(imports_table(folders, args.repeat))
            return
        arguments = ["--cores", args.cores, args.target]
        if args.configfile:
            arguments += ["--configfile", args.configfile]
        runs = [run_revision(revision, folder, arguments)
                for revision, folder in zip(args.revisions, folders.values())]
    print(f"snakemake {' '.join(arguments)}")
    print(format_tables([rule_table(jobs) for jobs, _ in runs], LABELS[:len(runs)],
                        [wall_seconds(jobs) for jobs, _ in runs]))
    print("wall time of the snakemake command: " + ", ".join(
        f"{label} {seconds:.0f} s" for label, (_, seconds) in zip(LABELS, runs)))


if __name__ == "__main__":
    main()
