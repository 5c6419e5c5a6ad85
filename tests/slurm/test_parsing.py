"""Parsing of sbatch/squeue/sacct/scontrol output and job states."""

from __future__ import annotations

import pytest

from model_training_framework.launch.slurm.parsing import (
    TERMINAL_STATES,
    JobState,
    ParseError,
    expand_array_task_spec,
    matches_job_id,
    parse_exit_code,
    parse_job_id,
    parse_sacct,
    parse_sbatch_job_id,
    parse_scontrol_jobs,
    parse_squeue,
    parse_state,
)

ALL_STATE_STRINGS = [
    "PENDING", "RUNNING", "SUSPENDED", "COMPLETING", "COMPLETED", "CONFIGURING", "CANCELLED",
    "FAILED", "TIMEOUT", "PREEMPTED", "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY",
    "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "RESV_DEL_HOLD", "REVOKED",
    "SIGNALING", "SPECIAL_EXIT", "STAGE_OUT", "STOPPED",
]  # fmt: skip


@pytest.mark.parametrize("raw", ALL_STATE_STRINGS)
def test_every_slurm_state_string_parses_to_its_member(raw):
    state, kept = parse_state(raw)
    assert state.value == raw and kept == raw


@pytest.mark.parametrize(
    ("raw", "state"),
    [("CANCELLED by 1000", JobState.CANCELLED), ("CANCELLED by 0", JobState.CANCELLED),
     ("COMPLETED+", JobState.COMPLETED), ("CD", JobState.COMPLETED), ("PD", JobState.PENDING),
     ("OOM", JobState.OUT_OF_MEMORY), (" RUNNING \n", JobState.RUNNING)],
)  # fmt: skip
def test_state_variants_parse(raw, state):
    assert parse_state(raw)[0] is state


@pytest.mark.parametrize("raw", ["", "WEIRD_NEW_STATE", "running"])
def test_unknown_state_keeps_raw_text(raw):
    state, kept = parse_state(raw)
    assert state is JobState.UNKNOWN and kept == raw.strip()


def test_terminal_states_are_the_finished_ones():
    assert JobState.COMPLETED.is_terminal and JobState.OUT_OF_MEMORY.is_terminal
    assert not JobState.PENDING.is_terminal and not JobState.REQUEUED.is_terminal
    assert not JobState.REQUEUE_HOLD.is_terminal and JobState.UNKNOWN not in TERMINAL_STATES


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("0:0", (0, 0)), ("1:15", (1, 15)), ("", (None, None)), ("x", (None, None))],
)
def test_exit_codes(raw, expected):
    assert parse_exit_code(raw) == expected


@pytest.mark.parametrize(
    ("out", "job_id"), [("123\n", "123"), ("77;cluster\n", "77"), ("warning\n42\n", "42")]
)
def test_sbatch_parsable_output(out, job_id):
    assert parse_sbatch_job_id(out) == job_id


def test_sbatch_output_without_id_is_an_error():
    with pytest.raises(ParseError, match="expected a job id"):
        parse_sbatch_job_id("Submitted batch job\n")


@pytest.mark.parametrize(
    ("job_id", "parts"),
    [
        ("123", ("123", None)),
        ("123_4", ("123", "4")),
        ("123_[5-9%2]", ("123", "[5-9%2]")),
        ("9.batch", ("9", None)),
    ],
)
def test_job_ids(job_id, parts):
    assert parse_job_id(job_id) == parts


def test_malformed_job_id_is_an_error():
    with pytest.raises(ParseError, match="not a Slurm job id"):
        parse_job_id("abc")


@pytest.mark.parametrize(
    ("spec", "tasks"), [("[5-9%2]", [5, 6, 7, 8, 9]), ("[0,3-4]", [0, 3, 4]), ("0-6:3", [0, 3, 6])]
)
def test_array_specs_expand(spec, tasks):
    assert expand_array_task_spec(spec) == tasks


def test_array_id_matches_its_tasks_only():
    assert matches_job_id("12", "12_3") and matches_job_id("12_3", "12_3")
    assert not matches_job_id("12_3", "12_4") and not matches_job_id("12", "120_1")


def test_squeue_rows_expand_pending_array_ranges():
    text = "5_[1-2%1]|PENDING|JobArrayTaskLimit|e-array\n5_0|RUNNING|None|e-array\n7|CANCELLED by 0|None|x\n"
    infos = {info.job_id: info for info in parse_squeue(text)}
    assert sorted(infos) == ["5_0", "5_1", "5_2", "7"]
    assert infos["5_1"].reason == "JobArrayTaskLimit" and infos["7"].state is JobState.CANCELLED


def test_squeue_row_with_too_few_fields_is_an_error():
    with pytest.raises(ParseError, match="fields"):
        parse_squeue("5|RUNNING\n")


def test_sacct_skips_steps_and_reads_exit_codes():
    text = "8|job|FAILED|1:0\n8.batch|batch|FAILED|1:0\n9_2|arr|TIMEOUT|0:15\n"
    infos = {info.job_id: info for info in parse_sacct(text)}
    assert sorted(infos) == ["8", "9_2"]
    assert (infos["8"].exit_code, infos["9_2"].exit_signal) == (1, 15)


def test_scontrol_records_give_ids_states_exit_codes_and_restarts():
    text = (
        "JobId=3 ArrayJobId=2 ArrayTaskId=0 JobName=my job JobState=COMPLETED Reason=None "
        "Restarts=1 ExitCode=0:0 RunTime=00:00:01\n"
        "JobId=2 ArrayJobId=2 ArrayTaskId=1-2%1 JobName=j JobState=PENDING Reason=JobArrayTaskLimit "
        "Restarts=0 ExitCode=0:0\n"
        "JobId=11 JobName=solo JobState=CANCELLED Reason=None Restarts=0 ExitCode=0:15\n"
    )
    infos = {info.job_id: info for info in parse_scontrol_jobs(text)}
    assert sorted(infos) == ["11", "2_0", "2_1", "2_2"]
    assert infos["2_0"].restart_count == 1 and infos["2_0"].name == "my job"
    assert infos["2_2"].state is JobState.PENDING and infos["11"].exit_signal == 15


def test_jobcomp_log_records_name_array_tasks_and_the_last_record_wins():
    from pathlib import Path

    from model_training_framework.launch.slurm.parsing import parse_jobcomp_log

    text = (Path(__file__).parent / "data" / "jobcomp_filetxt.log").read_text()
    infos = {info.job_id: info for info in parse_jobcomp_log("Id=9 partial line\n" + text)}
    assert sorted(infos) == ["1_0", "1_1", "2", "3"]
    assert (infos["1_0"].state, infos["1_0"].exit_code) == (JobState.COMPLETED, 0)
    assert (infos["1_1"].state, infos["1_1"].exit_code) == (JobState.FAILED, 1)
    assert (infos["2"].state, infos["2"].exit_code) == (JobState.FAILED, 2)
    assert infos["3"].state is JobState.CANCELLED  # requeued (PENDING record), then cancelled
    assert {info.source for info in infos.values()} == {"jobcomp"}
    assert infos["1_0"].name == "wrap"
