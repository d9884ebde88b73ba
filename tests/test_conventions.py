"""Workflow conventions: `snakemake --lint` finds nothing but the documented conda/container
lint, and `snakefmt --check` passes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from snakemake_cli import run_snakemake

REPO = Path(__file__).resolve().parents[1]
# Every rule runs in the project's one environment (pyproject.toml / environment.yml), so
# per-rule conda or container directives would only repeat it: the lint is accepted (README).
ACCEPTED_LINTS = {"Specify a conda environment or container for each rule."}


def test_snakemake_lint_finds_only_the_accepted_lint():
    completed = run_snakemake(None, "--lint", "--configfile", str(REPO / "config" / "test.yaml"))
    output = completed.stdout + completed.stderr
    assert "Lints for rule" in output or completed.returncode == 0, output[-3000:]
    lints = set(re.findall(r"^\s+\* (.+?):?$", output, flags=re.MULTILINE))
    assert lints <= ACCEPTED_LINTS, lints - ACCEPTED_LINTS


def test_snakefmt_check_passes():
    completed = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow"],
        capture_output=True, text=True, check=False, cwd=REPO)
    assert completed.returncode == 0, completed.stderr[-3000:]
