"""Paper-scale training on CPU: torchrun with gloo, the DataLoader path, resume after a killed rank.

The data are tiny ImageFolder trees written in the paper profile's on-disk layout; every run is
``nml pretrain`` / ``nml finetune`` as a cluster runs them (through ``torchrun`` or in one process).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
import torch
import yaml
from paper_layouts import write_image_folder as write_layout

from nml._infra.runtime import Runtime
from nml.models.engine import InMemoryBatches, StreamingBatches

pytestmark = pytest.mark.slow

# One process and two agree up to float summation order (gloo's all-reduce adds the two halves'
# gradients, one process sums the whole batch). Measured on this machine after 6 steps: the largest
# weight difference is 1.2e-7 (supervised) and 5.2e-6 (contrastive, whose loss goes through the
# gathered embeddings); the tolerance leaves room for other CPUs' kernels.
WEIGHT_RTOL, WEIGHT_ATOL = 1e-4, 1e-5


def write_image_folder(root, splits=("train", "val"), per_class=8):
    write_layout(root, splits, per_class=per_class, spread=30)


def tiny_paper_params(tmp_path, *, model="nml_resnet4_half_gn", epochs=2, batch_size=8, runtime=None, name="p",
                      contrastive=False):
    """The paper profile cut to a 24-image ImageNet-layout tree; supervised track only (or the
    contrastive track too, on the same images captioned from their class names)."""
    from nml.config import load_raw

    data_root = tmp_path / "datasets"
    if not (data_root / "imagenet-1k").exists():
        write_image_folder(data_root / "imagenet-1k")
        for domain in ("real", "sketch"):  # chapter 02's sections must name real trees to validate
            write_image_folder(data_root / f"domainnet-{domain}", ("train", "test"), per_class=2)
    raw, _ = load_raw("paper")
    raw.update(device="cpu", data_root=str(data_root), num_workers=0)
    raw.pop("turn")
    raw.pop("language")
    raw["runtime"] = {"precision": "fp32", "compile": False, **(runtime or {})}
    p = raw["pretrain"]
    p.update(model=model, image_size=32)
    p["supervised"].update(noise_ratios=[0.2], seeds=[0])
    p["supervised"]["optim"].update(epochs=epochs, batch_size=batch_size, warmup_epochs=0, lr=0.05)
    p["contrastive"].update(enabled=contrastive, noise_ratios=[0.25], seeds=[0], dataset=None, n_train=None, embed_dim=16,
                            caption_templates=["a photo of a {label}.", "a {label}."])
    p["contrastive"]["optim"].update(epochs=epochs, batch_size=batch_size, warmup_epochs=0)
    raw["nmtune"]["checkpoints"] = {"tracks": ["supervised"]}
    for section in ("ablation", "noisy_downstream"):
        raw["nmtune"][section]["checkpoints"] = {"tracks": ["supervised"], "noise_ratios": [0.2], "seeds": [0]}
    raw["spectral"]["id_tasks"] = ["domainnet-real"]
    raw["spectral"]["ood"] = [{"name": "real-to-sketch", "train": "domainnet-real", "test": ["domainnet-sketch"]}]
    raw["nmtune"]["runtime"]["task"] = "domainnet-real"
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def nml_command(*args, nproc: int | None = None) -> list[str]:
    if nproc is None:
        return [sys.executable, "-m", "nml.cli", *args]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "nml.cli", *args]


def run_nml(args, home, nproc=None, check=True):
    env = {**os.environ, "NML_HOME": str(home), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(nml_command(*args, nproc=nproc), env=env, capture_output=True, text=True, timeout=600)
    if check and done.returncode != 0:
        raise AssertionError(f"{args} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def home_with_assets(tmp_path, name):
    from nml._infra.paths import assets_dir

    home = tmp_path / name
    home.mkdir()
    (home / "assets").symlink_to(assets_dir(), target_is_directory=True)
    return home


def only_checkpoint(home):
    files = [p for p in (home / "checkpoints" / "supervised").glob("*.pt") if ".partial" not in p.name]
    assert len(files) == 1, files
    return files[0], torch.load(files[0], map_location="cpu", weights_only=False)


def test_two_gloo_processes_train_what_one_process_trains(tmp_path):
    params = tiny_paper_params(tmp_path)
    one, two = home_with_assets(tmp_path, "one"), home_with_assets(tmp_path, "two")
    run_nml(["pretrain", "--params", str(params), "--cell", "supervised:0.2:0"], one)
    out = run_nml(["pretrain", "--params", str(params), "--cell", "supervised:0.2:0"], two, nproc=2)
    assert "gloo process group" in out.stdout + out.stderr
    path_one, a = only_checkpoint(one)
    path_two, b = only_checkpoint(two)
    assert path_one.name == path_two.name  # same cache key: the layout does not change what is trained
    assert a["backbone"].keys() == b["backbone"].keys()
    moved = 0.0
    for key in a["backbone"]:
        torch.testing.assert_close(b["backbone"][key], a["backbone"][key], rtol=WEIGHT_RTOL, atol=WEIGHT_ATOL)
    for key in a["heads"]:
        torch.testing.assert_close(b["heads"][key], a["heads"][key], rtol=WEIGHT_RTOL, atol=WEIGHT_ATOL)
    # the runs did train (the weights left their initialisation), with the same curves
    init = _initial_backbone()
    moved = max(float((a["backbone"][k] - init[k]).abs().max()) for k in init if k in a["backbone"])
    assert moved > 1e-3
    for row_a, row_b in zip(a["history"], b["history"], strict=True):
        assert row_a.keys() == row_b.keys()
        for k in row_a:
            assert row_b[k] == pytest.approx(row_a[k], rel=1e-4, abs=1e-5), k


def test_contrastive_track_over_two_processes_contrasts_the_global_batch(tmp_path):
    """Each process embeds its half; the loss contrasts the gathered global batch, so two processes
    train what one trains (the gathered embeddings carry their gradients back)."""
    params = tiny_paper_params(tmp_path, contrastive=True)
    one, two = home_with_assets(tmp_path, "one"), home_with_assets(tmp_path, "two")
    args = ["pretrain", "--params", str(params), "--cell", "contrastive:0.25:0"]
    run_nml(args, one)
    run_nml(args, two, nproc=2)
    [a_path] = [p for p in (one / "checkpoints" / "contrastive").glob("*.pt") if ".partial" not in p.name]
    [b_path] = [p for p in (two / "checkpoints" / "contrastive").glob("*.pt") if ".partial" not in p.name]
    assert a_path.name == b_path.name
    a = torch.load(a_path, map_location="cpu", weights_only=False)
    b = torch.load(b_path, map_location="cpu", weights_only=False)
    for part in ("backbone", "heads"):
        for key in a[part]:
            torch.testing.assert_close(b[part][key], a[part][key], rtol=WEIGHT_RTOL, atol=WEIGHT_ATOL)
    assert b["history"][-1]["train_loss"] == pytest.approx(a["history"][-1]["train_loss"], rel=1e-4)


def _initial_backbone():
    from nml.models.backbones import create_backbone

    torch.manual_seed(0)
    return create_backbone("nml_resnet4_half_gn", num_classes=0, in_chans=3).state_dict()


def _kill_rank_when_checkpointed(proc: subprocess.Popen, partial_dir, rank: int = 1, timeout: float = 300) -> bool:
    """SIGKILL torchrun's worker ``rank`` once a step checkpoint exists; True if it was killed mid-run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any(partial_dir.glob("*.partial.pt")):
            for child in psutil.Process(proc.pid).children(recursive=True):
                try:
                    if child.environ().get("LOCAL_RANK") == str(rank):
                        child.send_signal(signal.SIGKILL)
                        return True
                except psutil.Error:
                    continue
        time.sleep(0.02)
    return False


def test_killed_rank_resumes_from_the_step_checkpoint_and_ends_where_an_uninterrupted_run_ends(tmp_path):
    # BatchNorm backbone: each process normalises its own half, in both runs alike
    params = tiny_paper_params(tmp_path, model="nml_resnet4_half", epochs=6, batch_size=4,
                               runtime={"checkpoint_every_steps": 1})
    args = ["pretrain", "--params", str(params), "--cell", "supervised:0.2:0"]
    whole, resumed = home_with_assets(tmp_path, "whole"), home_with_assets(tmp_path, "resumed")
    run_nml(args, whole, nproc=2)

    env = {**os.environ, "NML_HOME": str(resumed), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(nml_command(*args, nproc=2), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    killed = _kill_rank_when_checkpointed(proc, resumed / "checkpoints" / "supervised")
    log = proc.communicate(timeout=300)[0].decode()
    assert killed, f"the run ended before a rank could be killed:\n{log[-2000:]}"
    assert proc.returncode != 0
    partial = list((resumed / "checkpoints" / "supervised").glob("*.partial.pt"))
    assert partial and not [p for p in partial[0].parent.glob("*.pt") if ".partial" not in p.name]
    state = torch.load(partial[0], map_location="cpu", weights_only=False)
    assert (state["epoch"], state["step"]) != (6, 0)  # killed before the end

    out = run_nml(args, resumed, nproc=2)
    assert "resuming" in out.stdout + out.stderr
    _, a = only_checkpoint(whole)
    _, b = only_checkpoint(resumed)
    for part in ("backbone", "heads"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key} differs after resuming"
    assert a["history"] == b["history"]


def test_notebook_path_launches_torchrun_and_reads_the_checkpoint(tmp_path, monkeypatch):
    from nml.chapters.ch01_pretraining import run as pretraining
    from nml.config import load_params

    home = home_with_assets(tmp_path, "home")
    monkeypatch.setenv("NML_HOME", str(home))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    path = tiny_paper_params(tmp_path, runtime={"launcher": "torchrun", "nproc_per_node": 2})
    params = load_params(path=path)
    launched = []
    from nml._infra import launch

    real = launch.run_torchrun
    monkeypatch.setattr(launch, "run_torchrun", lambda *a, **k: (launched.append(a[3]), real(*a, **k))[1])
    [checkpoint] = pretraining.pretrain_all(params)
    assert launched == ["supervised:0.2:0"]
    assert checkpoint.path.exists() and np.isfinite(checkpoint.final["test_acc"])
    # a second call reads the cache: nothing is launched
    pretraining.pretrain_all(params)
    assert launched == ["supervised:0.2:0"]


# ------------------------------------------------------------------------------------------------
# the batch sources, in one process


def _streaming(folder, workers, *, world=1, rank=0, batch=6, micro=None):
    import timm
    from timm.data import create_transform, resolve_data_config

    from nml.data.paper import load_image_folder

    model = timm.create_model("resnet18", pretrained=False, num_classes=0)
    tf = create_transform(**resolve_data_config({"input_size": (3, 16, 16)}, model=model), is_training=True)
    dataset = load_image_folder(folder, "train", tf)
    runtime = Runtime(device=torch.device("cpu"), num_workers=workers, world_size=world, rank=rank,
                      per_device_batch_size=micro, persistent_workers=True, prefetch_factor=2)
    return StreamingBatches(dataset, None, batch, seed=3, augment=None, runtime=runtime)


def _epochs(source, epochs=(0, 1), start_step=0):
    return [(e, step, [(x.clone(), idx.clone()) for x, idx in micro], n)
            for e in epochs for step, micro, n in source.epoch(e, start_step if e == epochs[0] else 0)]


def test_dataloader_gives_the_same_batches_with_0_and_2_workers(tmp_path):
    write_image_folder(tmp_path / "tree")
    serial = _epochs(_streaming(tmp_path / "tree", 0))
    workers = _epochs(_streaming(tmp_path / "tree", 2))
    assert len(serial) == 2 * (24 // 6)
    for (e, s, micro_a, n_a), (e2, s2, micro_b, n_b) in zip(serial, workers, strict=True):
        assert (e, s, n_a) == (e2, s2, n_b)
        for (xa, ia), (xb, ib) in zip(micro_a, micro_b, strict=True):
            assert torch.equal(ia, ib) and torch.equal(xa, xb)
    # the augmentation is random (timm's train transform) but a function of (seed, epoch, image)
    first = {int(i): x for _, _, m, _ in serial[:4] for xs, ids in m for i, x in zip(ids, xs, strict=True)}
    second = {int(i): x for _, _, m, _ in serial[4:] for xs, ids in m for i, x in zip(ids, xs, strict=True)}
    assert any(not torch.equal(first[i], second[i]) for i in first if i in second)


def test_streamed_global_batches_are_the_same_on_any_number_of_processes(tmp_path):
    write_image_folder(tmp_path / "tree")
    one = _epochs(_streaming(tmp_path / "tree", 0))
    ranks = [_epochs(_streaming(tmp_path / "tree", 0, world=2, rank=r)) for r in (0, 1)]
    accumulated = _epochs(_streaming(tmp_path / "tree", 0, world=2, rank=1, micro=1))
    for k, (_, _, [(x, idx)], n) in enumerate(one):
        parts = [ranks[r][k][2][0] for r in (0, 1)]
        assert {int(i) for p in parts for i in p[1]} == {int(i) for i in idx}
        images = {int(i): xi for p in parts for i, xi in zip(p[1], p[0], strict=True)}
        assert all(torch.equal(images[int(i)], xi) for i, xi in zip(idx, x, strict=True))
        # rank 1 with micro-batches of one: three micro-batches per step, the same three images
        assert accumulated[k][3] == n and len(accumulated[k][2]) == 3
        assert {int(m[1]) for m in accumulated[k][2]} == {int(i) for i in parts[1][1]}


def test_resumed_epoch_skips_the_steps_taken(tmp_path):
    write_image_folder(tmp_path / "tree")
    full = _epochs(_streaming(tmp_path / "tree", 0), epochs=(1,))
    later = _epochs(_streaming(tmp_path / "tree", 0), epochs=(1,), start_step=2)
    assert [s for _, s, _, _ in later] == [2, 3]
    for a, b in zip(full[2:], later, strict=True):
        assert torch.equal(a[2][0][0], b[2][0][0]) and torch.equal(a[2][0][1], b[2][0][1])


def test_in_memory_batches_split_the_same_global_batch_over_processes():
    from nml._infra.training import random_crop_flip

    images = torch.randn(10, 1, 8, 8)
    one = Runtime(device=torch.device("cpu"))
    ranks = [Runtime(device=torch.device("cpu"), world_size=2, rank=r) for r in (0, 1)]
    whole = list(InMemoryBatches(images, None, 4, 5, random_crop_flip, one).epoch(0))
    halves = [list(InMemoryBatches(images, None, 4, 5, random_crop_flip, rt).epoch(0)) for rt in ranks]
    assert [s for s, _, _ in whole] == [0, 1, 2]
    for (step, [(x, idx)], n), h0, h1 in zip(whole, *halves, strict=True):
        assert h0[0] == h1[0] == step and h0[2] == h1[2] == n
        assert torch.equal(torch.cat([h0[1][0][0], h1[1][0][0]]), x)
        assert torch.equal(torch.cat([h0[1][0][1], h1[1][0][1]]), idx)


def test_gradient_accumulation_matches_the_whole_batch_step():
    """Two micro-batches of 4 give the gradient step of one batch of 8 (a BatchNorm-free model)."""
    from nml.models.engine import Stepper

    torch.manual_seed(0)
    x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
    results = []
    for micro in (None, 4):
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        rt = Runtime(device=torch.device("cpu"), per_device_batch_size=micro, channels_last=False)
        parts = [(x, torch.arange(8))] if micro is None else [(x[:4], torch.arange(4)), (x[4:], torch.arange(4, 8))]
        Stepper(model, opt, rt).step(parts, 8, lambda m, xb, idx: (torch.nn.functional.cross_entropy(m(xb), y[idx]), {}))
        results.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_cell_strings_name_grid_cells(tmp_path, nml_home_with_assets):
    from nml.chapters.ch01_pretraining.run import format_cell, parse_cell
    from nml.config import load_params

    params = load_params("smoke")
    assert parse_cell(params, format_cell("supervised", 0.2, 1)) == ("supervised", 0.2, 1)
    with pytest.raises(ValueError, match="not in the params' grid"):
        parse_cell(params, "supervised:0.3:0")
    with pytest.raises(ValueError, match="track:gamma:seed"):
        parse_cell(params, "supervised-0.2")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_smoke_pretraining_with_mixed_precision_on_a_gpu(nml_home_with_assets):
    from nml.chapters.ch01_pretraining import run as pretraining
    from nml.config import load_params

    for precision in ("bf16", "fp16"):
        params = load_params("smoke", overrides=["device=cuda", f"runtime.precision={precision}",
                                                 "pretrain.contrastive.enabled=false"])
        checkpoints = pretraining.pretrain_all(params)
        assert all(ck.spec.precision == precision for ck in checkpoints)
        assert all(np.isfinite(ck.final["train_loss"]) and 0 <= ck.final["test_acc"] <= 1 for ck in checkpoints)
