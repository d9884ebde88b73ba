"""Faults: a generation job killed with SIGKILL resumes from its checkpoint and ends with the
outputs of an uninterrupted run; a killed job leaves no file that looks complete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from metamers import stages, store


def _start_job(inputs: dict, path: Path) -> subprocess.Popen:
    code = ("import json, sys; from metamers import stages; "
            "kwargs = json.loads(sys.argv[1]); stages.generate_metamers(**kwargs)")
    return subprocess.Popen([sys.executable, "-c", code, json.dumps({**inputs,
                                                                      "path": str(path)})],
                            stderr=subprocess.PIPE, text=True)


def test_a_sigkilled_generation_job_resumes_to_identical_outputs(job_inputs, tmp_path):
    reference_path = tmp_path / "uninterrupted.h5"
    stages.generate_metamers(**{**job_inputs, "path": reference_path})
    expected = store.read_metamers(reference_path)

    path = tmp_path / "killed.h5"
    checkpoint = stages.checkpoint_path(path)
    job = _start_job(job_inputs, path)
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert job.poll() is None, "the job ended before it could be killed: raise max_iterations"
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    assert job.returncode == -signal.SIGKILL
    assert not path.exists()  # no file that looks complete
    assert checkpoint.exists()

    resumed = _start_job(job_inputs, path)
    _, log = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, log[-3000:]
    assert "resuming from checkpoint" in log
    assert not checkpoint.exists()
    content = store.read_metamers(path)
    for name in ("metamers", "initial_images", "loss", "iterations_to_success",
                 "iterations_run", "final_spearman", "predicted_class", "stop_reason"):
        np.testing.assert_array_equal(content[name], expected[name], err_msg=name)
    leftovers = [item.name for item in tmp_path.iterdir() if item.name.startswith(".")]
    assert leftovers == []
