"""Grid files: the YAML format of the issue, base config by path or inline, errors."""

from __future__ import annotations

import pytest

from model_training_framework.config.naming import NamingStrategy
from model_training_framework.errors import ConfigError
from model_training_framework.experiment.grid_yaml import parse_grid_document
from model_training_framework.experiment.search import describe_experiments, load_grid_search

ISSUE_GRID = """\
name: lr_sweep
base_config: base.yaml
naming: parameter_based
parameters:
  optimizer.lr: [0.001, 0.01]
  model.hidden: [32, 64]
linked:
  - {training.max_epochs: [1, 2], optimizer.weight_decay: [0.0, 0.1]}
distributions:
  - {key: model.dropout, distribution: uniform, n_samples: 3, seed: 0, low: 0.0, high: 0.5}
"""


@pytest.fixture
def grid_file(tmp_path):
    (tmp_path / "base.yaml").write_text("experiment_name: mlp\nmodel:\n  act: relu\n")
    path = tmp_path / "sweep.yaml"
    path.write_text(ISSUE_GRID)
    return path


def test_issue_example_expands_and_validates(grid_file):
    search = load_grid_search(grid_file)
    experiments = search.generate_experiments()
    assert search.get_total_experiments() == len(experiments) == 2 * 2 * 2 * 3
    assert all(e.model["act"] == "relu" for e in experiments)
    assert all(e.experiment_name.startswith("mlp_") for e in experiments)
    assert {(e.training.max_epochs, e.optimizer.weight_decay) for e in experiments} == {
        (1, 0.0),
        (2, 0.1),
    }
    assert len({e.model["dropout"] for e in experiments}) == 3


def test_loading_twice_gives_the_same_names(grid_file):
    assert describe_experiments(load_grid_search(grid_file)) == describe_experiments(
        load_grid_search(grid_file)
    )


def test_describe_lists_name_and_swept_values(grid_file):
    listing = describe_experiments(load_grid_search(grid_file))
    name, values = listing[0]
    assert set(values) == {
        "optimizer.lr",
        "model.hidden",
        "training.max_epochs",
        "optimizer.weight_decay",
        "model.dropout",
    }
    assert name.startswith("mlp_")


def test_inline_base_config_several_grids_and_env_vars(tmp_path, monkeypatch):
    monkeypatch.setenv("MTF_TEST_ROOT", "/scratch")
    (tmp_path / "g.yaml").write_text(
        """
base_config:
  experiment_name: inline
  data: {root: "${MTF_TEST_ROOT}/data"}
naming: HASH_BASED
grids:
  - name: small
    parameters: {optimizer.lr: [1e-3, 1e-4]}
  - name: sgd
    parameter_sets:
      - [{optimizer.name: sgd, optimizer.lr: 0.1}]
    conditional:
      - {key: optimizer.momentum_tag, values: [a, b], when: {optimizer.name: sgd}}
    exclude:
      - {optimizer.name: adamw}
"""
    )
    search = load_grid_search(tmp_path / "g.yaml")
    assert search.naming_strategy is NamingStrategy.HASH_BASED
    assert search.base_config["data"]["root"] == "/scratch/data"
    values = [v for _, v in describe_experiments(search)]
    assert values[:2] == [{"optimizer.lr": 1e-3}, {"optimizer.lr": 1e-4}]  # floats, not strings
    assert len(values) == 2 + 2


def test_linked_groups_as_rows_are_alternatives():
    document = parse_grid_document(
        {
            "name": "g",
            "parameters": {"seed": [1, 2]},
            "linked": [
                {"optimizer.lr": [0.1, 0.2], "training.max_epochs": [1, 2]},
                [{"optimizer.lr": 0.5, "training.max_epochs": 5}],
            ],
        }
    )
    assert document.grids[0].get_parameter_count() == 2 * 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "g", "paramters": {}}, "unknown"),
        ({"parameters": {"a": [1]}}, "needs a 'name:'"),
        ({"name": "g", "naming": "random"}, "naming strategy"),
        ({"name": "g", "base_config": 3}, "file path or a mapping"),
        ({"name": "g", "base_config": "rel.yaml"}, "relative path"),
        ({"grids": [{"name": "a"}], "parameters": {"a": [1]}}, "both 'grids:'"),
        ({"grids": []}, "non-empty list"),
        ({"name": "g", "distributions": [{"key": "a"}]}, "needs key, distribution and n_samples"),
        ({"name": "g", "conditional": [{"key": "a", "values": [1]}]}, "key, values and when"),
        ({"name": "g", "parameters": {"a": 1}}, "must be a list"),
    ],
)
def test_bad_grid_documents_are_clear_errors(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_grid_document(data)


def test_errors_from_a_file_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: g\nparameters: {a: []}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*grid 'g'.*empty"):
        load_grid_search(path)


def test_missing_base_config_file_is_an_error(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("name: g\nbase_config: missing.yaml\n")
    with pytest.raises(ConfigError, match="does not exist"):
        load_grid_search(path)
