"""The configured device: a device this machine does not have is a clear error up front.

The machine running the default suite has no GPU, so the refusals of ``cuda`` run there; the
CUDA-index tests run where a GPU is available.
"""

from __future__ import annotations

import pytest
import torch

from model_training_framework.errors import ConfigError
from model_training_framework.trainer import (
    GenericTrainer,
    GenericTrainerConfig,
    MultiDataLoaderConfig,
)

needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _build(tmp_path, device: str) -> GenericTrainer:
    config = GenericTrainerConfig(
        experiment_name="run",
        device=device,
        train_loader_config=MultiDataLoaderConfig(),
        checkpoint={"root_dir": str(tmp_path / "runs")},
    )
    model = torch.nn.Linear(3, 1)
    return GenericTrainer(config, model, [torch.optim.SGD(model.parameters(), lr=0.1)])


@needs_no_cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_on_a_machine_without_cuda_is_refused_naming_the_setting_and_the_choices(
    tmp_path, device
):
    with pytest.raises(ConfigError) as caught:
        _build(tmp_path, device)
    message = str(caught.value)
    assert message.startswith(f"device: '{device}' is not available on this machine")
    assert "available: 'cpu'" in message
    assert "device: 'auto'" in message and "'cpu'" in message
    if torch.version.cuda is None:
        assert "built without CUDA" in message
    assert not (tmp_path / "runs").exists(), "nothing is written"


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="needs a machine without MPS")
def test_an_accelerator_this_machine_lacks_is_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match=r"^device: 'mps' is not available on this machine"):
        _build(tmp_path, "mps")


def test_a_device_type_torch_does_not_know_is_refused_with_the_choices(tmp_path):
    with pytest.raises(ConfigError) as caught:
        _build(tmp_path, "gpu")
    message = str(caught.value)
    assert message.startswith("device: 'gpu' is not a torch device type")
    assert "'auto'" in message and "'cuda'" in message and "'cpu'" in message


def test_cpu_and_auto_still_build(tmp_path):
    assert _build(tmp_path, "cpu").device == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert _build(tmp_path, "auto").device.type == expected


@needs_cuda
def test_a_cuda_index_past_the_visible_devices_is_refused_with_their_count(tmp_path):
    count = torch.cuda.device_count()
    with pytest.raises(ConfigError) as caught:
        _build(tmp_path, f"cuda:{count}")
    message = str(caught.value)
    assert message.startswith(f"device: 'cuda:{count}' is not available on this machine")
    assert f"'cuda:{count - 1}'" in message


@needs_cuda
def test_an_available_cuda_device_builds(tmp_path):
    assert _build(tmp_path, "cuda:0").device == torch.device("cuda", 0)
