"""Seeded fuzzing of every parser of untrusted input: only accepted inputs and clean InputErrors (exit 2).

A few hundred cases per parser per run (`benchmarks/fuzz.py` runs 10^5 and writes docs/benchmarks/fuzz.md).
Each target must reach both outcomes, so a mutator that only ever produces garbage (or never breaks
anything) fails here too.
"""

from __future__ import annotations

import pytest
from fuzz_cases import TARGETS

CASES = {"dnnkit-record": 200, "data-imagefolder": 150}  # the slower targets (a model load, a folder of images)
DEFAULT_CASES = 300


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz_target_has_only_clean_outcomes(name, tmp_path):
    tally = TARGETS[name].run(CASES.get(name, DEFAULT_CASES), seed=20, workdir=tmp_path)
    assert tally.other == 0, f"{name}: {tally.other} other exceptions: {tally.examples}"
    assert tally.accepted > 0 and tally.clean > 0, tally.as_dict()


def test_harness_counts_a_crash_as_other():
    from fuzz_cases import run_case

    from dnnkit.errors import InputError, RuntimeFailure

    def boom():
        raise TypeError("unhashable type: 'list'")

    def bad_input():
        raise InputError("one line")

    def runtime():
        raise RuntimeFailure("not bad input")

    assert run_case(boom)[0] == "other"
    assert run_case(runtime)[0] == "other"
    assert run_case(bad_input)[0] == "clean"
    assert run_case(lambda: None)[0] == "accepted"
