"""The runtime section, its resolution per device, gradient accumulation arithmetic, and the
torchrun command a notebook launches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from nml._infra.launch import torchrun_command
from nml._infra.runtime import (
    Runtime,
    current_runtime,
    resolve_precision,
    resolve_runtime,
    use_runtime,
)
from nml._infra.runtime_config import RuntimeConfig


def test_defaults_resolve_to_the_offline_runtime_on_cpu():
    rt = resolve_runtime(RuntimeConfig(), "cpu")
    assert (rt.precision, rt.compile, rt.sync_batchnorm, rt.pin_memory, rt.world_size) == ("fp32", False, False, False, 1)
    assert rt.channels_last and rt.streaming is None and rt.grad_scaler() is None
    assert isinstance(rt.autocast(), type(Runtime(device=torch.device("cpu")).autocast()))


def test_auto_precision_is_mixed_on_cuda_only():
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    rt = Runtime(device=torch.device("cpu"), precision="fp16")
    assert rt.grad_scaler() is not None and rt.dtype == torch.float16


def test_bf16_autocast_runs_on_cpu():
    rt = Runtime(device=torch.device("cpu"), precision="bf16")
    with rt.autocast():
        out = torch.nn.Linear(4, 3)(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16


def test_accumulation_splits_the_global_batch_or_names_the_problem():
    assert Runtime(device=torch.device("cpu"), world_size=4).accumulation(256) == (64, 1)
    assert Runtime(device=torch.device("cpu"), world_size=4, per_device_batch_size=16).accumulation(256) == (16, 4)
    with pytest.raises(ValueError, match="does not split over 3 processes"):
        Runtime(device=torch.device("cpu"), world_size=3).accumulation(256)
    with pytest.raises(ValueError, match="per_device_batch_size=48 must divide"):
        Runtime(device=torch.device("cpu"), world_size=4, per_device_batch_size=48).accumulation(256)


def test_multi_node_needs_a_rendezvous_endpoint():
    with pytest.raises(ValidationError, match="rdzv_endpoint"):
        RuntimeConfig(nnodes=2)
    assert RuntimeConfig(nnodes=2, rdzv_endpoint="node001:29500").world_size == 2


def test_torchrun_command():
    one = torchrun_command(RuntimeConfig(nproc_per_node=4), "pretrain", Path("p.yaml"), "supervised:0.1:0", run_id="x")
    assert one[1:4] == ["-m", "torch.distributed.run", "--nproc_per_node=4"] and "--standalone" in one
    assert one[-6:] == ["nml.cli", "pretrain", "--params", "p.yaml", "--cell", "supervised:0.1:0"]
    many = torchrun_command(RuntimeConfig(nproc_per_node=8, nnodes=2, rdzv_endpoint="n1:29500"), "finetune",
                            Path("p.yaml"), "c", run_id="abc")
    assert "--rdzv_endpoint=n1:29500" in many and "--rdzv_id=nml-abc" in many and "--standalone" not in many


def test_current_runtime_is_scoped():
    assert current_runtime("cpu") == Runtime(device=torch.device("cpu"))
    special = Runtime(device=torch.device("cpu"), precision="bf16")
    with use_runtime(special):
        assert current_runtime("cpu") is special
    assert current_runtime("cpu").precision == "fp32"


def test_fp32_keeps_checkpoint_keys_and_mixed_precision_changes_them():
    from dataclasses import asdict

    from nml._infra.cache import stable_hash
    from nml.models.pretrain import PRETRAIN_CODE_VERSION, PretrainSpec

    spec = PretrainSpec("supervised", "m", "d", 1, 10, 0.1, 0, {"lr": 0.1}, True)
    fields = asdict(spec)
    del fields["precision"]
    assert spec.key() == stable_hash({**fields, "code": PRETRAIN_CODE_VERSION})  # the key before precision existed
    bf16 = PretrainSpec("supervised", "m", "d", 1, 10, 0.1, 0, {"lr": 0.1}, True, precision="bf16")
    assert bf16.key() != spec.key()
