"""On a terminal, dnnkit's bars finish and vanish before the result table is printed (never under it)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys


def _run_on_a_terminal(args: list[str], timeout: float = 240) -> tuple[int, str]:
    master, slave = pty.openpty()
    env = dict(os.environ, COLUMNS="120", LINES="40", TERM="xterm")
    proc = subprocess.Popen([sys.executable, "-m", "dnnkit", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=env, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=timeout)
    os.close(master)
    return proc.returncode, b"".join(chunks).decode(errors="replace")


def test_progress_bar_completes_and_is_cleared_before_the_table(digits_cnn_ref):
    code, text = _run_on_a_terminal(["prune", digits_cnn_ref, "--ratio", "0.7", "--layer-adaptive", "--data",
                                     "digits", "--levels", "11", "--dry-run"])
    assert code == 0, text[-2000:]
    table = text.index("layer")
    bars = text[:table]
    assert "rd curves" in bars and "5/5" in bars  # the bar reached its total ...
    assert "rd curves" not in text[table:]  # ... and was not drawn again once the result began
    assert "\x1b[2K" in text[bars.rindex("5/5"):table]  # the bar line was cleared before the table
