"""Properties of sweep names that users rely on, checked on random sweeps (hypothesis).

- a rerun after adding or removing values keeps every remaining experiment's name;
- names never differ only in case (one directory on macOS/Windows): such a sweep is refused;
- names do not depend on the Python hash seed (``PYTHONHASHSEED``) of the process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from model_training_framework.config.naming import (
    MAX_NAME_LENGTH,
    NamingStrategy,
    abbreviate_keys,
    canonical_text,
    make_experiment_name,
    name_experiments,
)
from model_training_framework.errors import ConfigError

KEYS = ["optimizer.lr", "scheduler.lr", "model.act", "model.Act", "data.batch_size"]
_case_text = st.text(alphabet="aAbB/ ", max_size=3)  # values that differ only in case, often
_values = st.one_of(
    _case_text,
    st.booleans(),
    st.none(),
    st.sampled_from(["True", "true", "None", "none", "nan", "1", "1.0"]),
    st.integers(-3, 3),
    st.floats(allow_nan=False, width=16),
    st.lists(st.integers(0, 2), max_size=2),
)
_assignment = st.dictionaries(st.sampled_from(KEYS), _values, min_size=1, max_size=3)
_STRATEGIES = [NamingStrategy.PARAMETER_BASED, NamingStrategy.HASH_BASED]


def _unique(assignments):
    seen, result = set(), []
    for assignment in assignments:
        if canonical_text(assignment) not in seen:
            seen.add(canonical_text(assignment))
            result.append(assignment)
    return result


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(_assignment, min_size=1, max_size=10),
    strategy=st.sampled_from(_STRATEGIES),
)
def test_names_are_unique_ignoring_case_or_the_sweep_is_refused(rows, strategy):
    assignments = _unique(rows)
    shorts = abbreviate_keys(key for row in assignments for key in row)
    wanted = [make_experiment_name("b", row, strategy, abbreviations=shorts) for row in assignments]
    try:
        names = name_experiments("b", assignments, strategy)
    except ConfigError as err:
        assert "only in case" in str(err)
        assert len({name.lower() for name in wanted}) < len(wanted)  # refused only when needed
        return
    assert names == wanted
    assert len({name.lower() for name in names}) == len(names)
    assert all(len(name) <= MAX_NAME_LENGTH for name in names)


def _names_by_identity(assignments, strategy):
    names = name_experiments("b", assignments, strategy)
    return dict(zip(map(canonical_text, assignments), names, strict=True))


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(_assignment, min_size=1, max_size=8),
    added=st.lists(_assignment, max_size=4),
    data=st.data(),
    strategy=st.sampled_from(_STRATEGIES),
)
def test_a_rerun_with_values_added_or_removed_keeps_the_other_names(rows, added, data, strategy):
    # The grid is edited: some value combinations removed, some added, the order changed; the
    # same keys are swept (a new key is a new token in every name anyway).
    before = _unique(rows)
    kept = data.draw(st.lists(st.sampled_from(before), min_size=1, unique_by=canonical_text))
    after = data.draw(st.permutations(_unique([*kept, *added])))
    assume({k for row in after for k in row} == {k for row in before for k in row})
    try:
        old = _names_by_identity(before, strategy)
        new = _names_by_identity(after, strategy)
    except ConfigError as err:  # names differing only in case: refused, see the test above
        assert "only in case" in str(err)
        return
    assert all(new[identity] == old[identity] for identity in new if identity in old)


_SCRIPT = """
import json, sys
from model_training_framework.config.naming import name_experiments
assignments = json.loads(sys.stdin.read())
print(json.dumps([name_experiments("base", assignments, s) for s in ("parameter_based", "hash_based")]))
"""


def _names_in_a_process(assignments, hash_seed: str) -> list[list[str]]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        input=json.dumps(assignments),
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize("hash_seed", ["1", "4242"])
def test_names_do_not_depend_on_the_python_hash_seed(hash_seed):
    assignments = [
        {"optimizer.lr": 0.001, "model.cfg": {"b": [1, 2], "a": {"y": None, "x": True}}},
        {"optimizer.lr": 1e-05, "model.cfg": {"a": 1, "é": "x y"}, "data.batch_size": 32},
        {"scheduler.lr": "Cos ine", "model.cfg": {"k": "z" * 200}},
        {"optimizer.lr": 0.1, "data.batch_size": 64, "model.act": "gelu"},
    ]
    assert _names_in_a_process(assignments, hash_seed) == _names_in_a_process(assignments, "0")
