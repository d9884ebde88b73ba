"""Running this repository's workflow from tests: one command line, built in one place."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_snakemake(workdir: Path | None, *arguments: str,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m snakemake --snakefile Snakefile [--directory workdir] *arguments``, its
    output captured (targets go before ``--configfile``, which takes every name after it)."""
    directory = ["--directory", str(workdir)] if workdir is not None else []
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
               *directory, *arguments]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False,
                          cwd=REPO if workdir is None else None)


def planned_outputs(dry_run_output: str) -> list[str]:
    """The outputs of every job that a ``--dry-run`` plans."""
    return re.findall(r"^\s*output: (.+)$", dry_run_output, flags=re.MULTILINE)
