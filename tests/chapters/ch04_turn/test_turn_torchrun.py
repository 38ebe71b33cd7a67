"""Chapter 04 at paper scale on CPU: TURN fitted through ``torchrun`` (2 gloo processes, the
DataLoader path over an ImageFolder tree) equals TURN fitted in one process, and the notebook's
job map launches and then reads it."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml
from paper_layouts import tiny_vit, write_image_folder

pytestmark = pytest.mark.slow


@pytest.fixture
def params_file(tmp_path):
    from nml.config import load_raw

    data_root = tmp_path / "datasets"
    write_image_folder(data_root / "clothing1m", ("train", "test"), ("shirt", "jacket", "dress"), 8, seed=1, spread=25)
    # chapters 01-03 must name real trees to validate; 04 reads only clothing1m here
    for name in ("imagenet-1k", "domainnet-real"):
        write_image_folder(data_root / name, ("train", "val", "test"), ("shirt", "jacket", "dress"), 1, seed=1, spread=25)
    vit = f"hf:{tiny_vit(tmp_path / 'vit')}"
    raw, _ = load_raw("paper")
    raw.update(device="cpu", data_root=str(data_root), num_workers=0)
    raw["runtime"] = {"precision": "fp32", "compile": False, "launcher": "torchrun", "nproc_per_node": 2}
    raw.pop("language")
    raw["pretrain"].update(model="resnet18", image_size=32)
    raw["pretrain"]["contrastive"].update(enabled=False, dataset=None)
    raw["spectral"].update(id_tasks=["domainnet-real"],
                           ood=[{"name": "r", "train": "domainnet-real", "test": ["domainnet-real"]}])
    raw["nmtune"]["runtime"].update(task="domainnet-real")
    for section in (raw["nmtune"], raw["nmtune"]["ablation"], raw["nmtune"]["noisy_downstream"]):
        section["checkpoints"]["tracks"] = ["supervised"]
    t = raw["turn"]
    small = {"epochs": 2, "batch_size": 4, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-5}
    t.update(dataset="clothing1m", backbones=[{"name": vit}], seeds=[0], n_jobs=1, methods=["ce-lp", "turn"],
             noise=[{"kind": "uniform", "ratio": 0.5}], mild_noise=None, lp=small, fft=small, turn={"epochs_fft": 2})
    t["two_networks"].update(views=2, warmup_epochs=1, batch_size=4)
    t["timing"].update(epochs=2, warmup_epochs=1)
    for study in ("components", "tsne"):
        t[study]["backbones"] = [vit]
    for study in ("sensitivity", "purity", "timing"):
        t[study]["backbone"] = vit
    path = tmp_path / "paper-turn.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, vit


def _home(tmp_path, name):
    from nml._infra.paths import assets_dir

    home = tmp_path / name
    home.mkdir()
    (home / "assets").symlink_to(assets_dir(), target_is_directory=True)
    return home


def test_turn_through_torchrun_equals_one_process_and_the_notebook_reads_it(params_file, tmp_path, monkeypatch):
    from nml._infra import launch
    from nml._infra.jobs import result_path
    from nml.chapters.ch04_turn import run as turn_chapter
    from nml.config import load_params

    path, vit = params_file
    launched_home = _home(tmp_path, "launched")
    monkeypatch.setenv("NML_HOME", str(launched_home))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    params = load_params(path=path)
    cells = []
    real = launch.run_torchrun
    monkeypatch.setattr(launch, "run_torchrun", lambda *a, **k: (cells.append(a[3]), real(*a, **k))[1])

    ctx = turn_chapter.prepare(params, checkpoints=[])
    assert ctx.runtime is not None and not ctx.runtime.distributed  # the notebook's own process
    rows = turn_chapter.table2(ctx)
    # TURN (images) went through torchrun; the linear probe (cached features) ran here
    assert len(cells) == 1 and "method=turn" in cells[0] and f"backbone={vit}" in cells[0]
    assert set(rows["method"]) == {"ce-lp", "turn"}
    turn_job = next(j for j in [ctx.job("table2", vit, params.turn.noise[0], "turn", 0)])
    launched = pickle.loads(result_path("turn", turn_job.key()).read_bytes())

    # the same cell in one process (no torchrun), into its own results cache but over the same
    # cached frozen features (extracted here with another thread count they would differ in the
    # last bits, and so would the job's key)
    single_home = _home(tmp_path, "single")
    shutil.copytree(launched_home / "features", single_home / "features", ignore=shutil.ignore_patterns("turn"))
    env = {**os.environ, "NML_HOME": str(single_home), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "nml.cli", "finetune", "--params", str(path), "--cell", cells[0]],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [single_file] = (single_home / "features" / "turn").glob("*.pkl")
    assert single_file.name == result_path("turn", turn_job.key()).name  # same key on both layouts
    single = pickle.loads(single_file.read_bytes())

    # TURN's cleansing, subsets and every epoch's test predictions agree; accuracies to float rounding
    assert [s["n_subset"] for s in launched["selection"]] == [s["n_subset"] for s in single["selection"]]
    np.testing.assert_array_equal(launched["pred_last"], single["pred_last"])
    for a, b in zip(launched["history"], single["history"], strict=True):
        assert a["phase"] == b["phase"] and a["epoch"] == b["epoch"]
        assert a["test_acc"] == pytest.approx(b["test_acc"], abs=1e-9)
    # a second pass reads the cache: nothing is launched again
    turn_chapter.table2(ctx)
    assert len(cells) == 1


def test_job_cells_round_trip(params_file, nml_home_with_assets):
    from nml.chapters.ch04_turn.run import job_cell, parse_job_cell
    from nml.config import load_params

    path, vit = params_file
    params = load_params(path=path)

    class Job:  # the fields job_cell reads
        meta = {"study": "sensitivity", "backbone": vit, "noise_kind": "uniform", "noise_ratio": 0.9,
                "method": "turn", "seed": 2, "label": "TURN (τ=0.5)"}
        overrides = {"tau": 0.5, "epochs_fft": 3, "cleansing": "once"}

    fields = parse_job_cell(job_cell(Job))
    assert fields["backbone"] == vit and fields["study"] == "sensitivity" and fields["seed"] == 2
    assert (fields["noise"].kind, fields["noise"].ratio) == ("uniform", 0.9)
    assert fields["tau"] == 0.5 and fields["epochs_fft"] == 3 and "label" not in fields
    assert fields["cleansing"] == "once"
    with pytest.raises(ValueError, match="missing"):
        parse_job_cell("backbone=x,method=turn")
    assert params.turn.backbones[0].name == vit
