"""benchmarks/profile_run.py: per-rule job times and wall time parsed from a Snakemake log."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmark_module import benchmark_module

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "snakemake_run.log"


@pytest.fixture(scope="module")
def profile_run():
    with benchmark_module("profile_run") as module:
        yield module


def test_jobs_start_at_their_rule_and_finish_at_their_id(profile_run):
    jobs = profile_run.parse_log(FIXTURE.read_text())
    assert sorted(jobs) == [3, 4, 10, 12]
    assert {job_id: (job.rule, job.seconds) for job_id, job in jobs.items()} == {
        12: ("train_model", 22.0), 10: ("train_model", 30.0),  # Snakemake 9's "Finished jobid"
        3: ("score_condition", 16.0),  # Snakemake 7's "Finished job 3."
        4: ("score_condition", None),  # failed: no finish, not counted as a new job
    }


def test_rule_table_sums_finished_jobs_and_counts_unfinished(profile_run):
    jobs = profile_run.parse_log(FIXTURE.read_text())
    table = profile_run.rule_table(jobs)
    assert list(table) == ["train_model", "score_condition"]  # order of first start
    assert table["train_model"] == {"jobs": 2, "total_s": 52.0, "max_s": 30.0,
                                    "unfinished": 0, "mean_s": 26.0}
    assert table["score_condition"]["jobs"] == 1
    assert table["score_condition"]["unfinished"] == 1
    assert profile_run.wall_seconds(jobs) == 38.0  # 08:08:32 to 08:09:10


def test_two_runs_side_by_side_with_ratios(profile_run):
    table = profile_run.rule_table(profile_run.parse_log(FIXTURE.read_text()))
    faster = {rule: {**row, "total_s": row["total_s"] / 2} for rule, row in table.items()}
    text = profile_run.format_tables([table, faster], ["A", "B"], [38.0, 19.0])
    rows = {line.split()[0]: line.split() for line in text.splitlines()[1:-1]}
    assert rows["train_model"][-1] == "0.50"
    assert "1 (1 unfinished)" in text
    assert text.splitlines()[-1].endswith("A 38 s, B 19 s")
