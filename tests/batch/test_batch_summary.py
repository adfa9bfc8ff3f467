"""The batch summary after Ctrl-C: finished, interrupted and never-started items are counted apart."""

from __future__ import annotations

import os
import signal

import pytest

from dnnkit.batch.plan import BatchItem
from dnnkit.batch.runner import BatchSummary, run_batch
from dnnkit.cli.batch import interrupted_message


def _item(index: int) -> BatchItem:
    return BatchItem(index, f"m{index}.safetensors", ["inspect", f"m{index}.safetensors", "--json"], None,
                     writes=False, report=False)


def _raw(status: str, code: int) -> dict:
    return {"status": status, "exit_code": code, "metrics": {"x": 1} if status == "ok" else None,
            "error": None if status == "ok" else "boom", "seconds": 0.1}


class _CtrlCExecutor:
    """Item 1 finishes, then Ctrl-C arrives; item 2, running, then reports as an executor does after the signal."""

    name = "fake"

    def __init__(self, late_status: str, late_code: int) -> None:
        self.late = (late_status, late_code)

    def describe(self) -> str:
        return "fake"

    def run(self, items, emit) -> None:
        emit(items[0], _raw("ok", 0))
        try:
            os.kill(os.getpid(), signal.SIGINT)  # the batch's handler turns it into KeyboardInterrupt here
            raise AssertionError("SIGINT did not interrupt the batch")
        except KeyboardInterrupt:
            emit(items[1], _raw(*self.late))
            raise


def test_interrupted_item_is_not_finished():
    lines = []
    summary = run_batch([_item(i) for i in (1, 2, 3)], _CtrlCExecutor("interrupted", 130), emit=lines.append)
    assert summary.interrupted and summary.stopped
    assert [line["status"] for line in lines] == ["ok", "interrupted"]
    assert (summary.finished, summary.interrupted_items, summary.not_run) == (1, 1, 1)
    message, hint = interrupted_message(summary)
    assert message.startswith("interrupted: 1 of 3 items finished, 1 interrupted, 1 not run;")
    assert "--resume" in hint


@pytest.mark.parametrize("code", [1, None])  # None: the worker process died under the Ctrl-C
def test_failure_caused_by_ctrl_c_counts_as_interrupted(code):
    """A command that turns the KeyboardInterrupt into an ordinary failure did not finish either, and
    reports the interrupted exit code 130 like every interrupted item (seen under load: exit 1)."""
    lines = []
    summary = run_batch([_item(i) for i in (1, 2)], _CtrlCExecutor("failed", code), emit=lines.append)
    assert [line["status"] for line in lines] == ["ok", "interrupted"]
    assert lines[1]["exit_code"] == 130 and lines[1]["error"] and lines[1]["metrics"] is None
    assert interrupted_message(summary)[0].startswith("interrupted: 1 of 2 items finished, 1 interrupted;")


def test_message_when_every_item_had_finished():
    summary = BatchSummary(total=2, results=[{"status": "ok"}, {"status": "skipped"}], interrupted=True)
    message, hint = interrupted_message(summary)
    assert message == "interrupted after all 2 items had finished; their outputs are kept" and hint is None


def test_an_interrupted_item_alone_still_means_exit_130():
    summary = BatchSummary(total=2, results=[{"status": "ok"}, {"status": "interrupted"}])
    assert summary.stopped and summary.failed == 1
