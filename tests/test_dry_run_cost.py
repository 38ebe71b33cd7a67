"""`nml run --dry-run` prices each notebook's grid with the measured throughput table, or says to
measure it first; `nml bench throughput` measures the profile's models and writes that table."""

import pandas as pd
import pytest

from nml.cli import main
from nml.config import load_params
from nml.models.throughput import COLUMNS, ThroughputModel, default_image_size, throughput_path
from nml.runner import profile_models

IMAGENET_TRAIN = 1_281_167


def _paper_dry_run(capsys, data_root, *extra: str) -> str:
    assert main(["run", "--profile", "paper", "-p", f"data_root={data_root}", *extra, "--dry-run"]) == 0
    return capsys.readouterr().out


def _notebook(out: str, name: str) -> str:
    """The dry-run's block of one notebook."""
    block = out.split(f"  {name}", 1)[1]
    return block.split("\n  0", 1)[0].split("\nmissing on this machine", 1)[0]


def _write_table(rate: float = 1000.0) -> None:
    """Every paper model at ``rate`` images/s for training and twice that for extraction; MSN unbuildable."""
    params = load_params("paper", overrides=["data_root=null"], require_data=False)
    rows = []
    for m in profile_models(params):
        row = {"model": m.model, "role": m.role, "image_size": m.image_size or default_image_size(m.model),
               "device": "cpu", "device_name": "test", "precision": "fp32", "batch": 4,
               "train_images_per_s": rate, "extract_images_per_s": 2 * rate, "note": ""}
        if m.model.startswith("hf:"):
            row.update(train_images_per_s=None, extract_images_per_s=None, note="cannot be built offline: not cached")
        rows.append(row)
    path = throughput_path("cpu")
    path.parent.mkdir(parents=True)
    pd.DataFrame(rows, columns=COLUMNS).to_csv(path, index=False)


def test_without_a_table_the_dry_run_says_to_measure_first(nml_home, capsys, tmp_path):
    out = _paper_dry_run(capsys, tmp_path)
    assert out.count("run `nml bench throughput` first") == 4  # notebooks 01-04; 05 has no image model
    assert "CPU-h" not in out and "img/s ->" not in out
    # the papers' own hours stand beside, with their source
    assert "NMTune Table 14 (App. B.6)" in _notebook(out, "03_nmtune.ipynb") and "NMTune 8.23" in out
    assert "paper: not reported" in _notebook(out, "01_pretraining.ipynb")
    assert "TURN Table 1" in _notebook(out, "04_turn.ipynb")


@pytest.mark.parametrize("devices", [1, 4])
def test_with_a_table_the_dry_run_prints_device_hours(nml_home, capsys, tmp_path, devices):
    _write_table(1000.0)
    out = _paper_dry_run(capsys, tmp_path, "-p", f"runtime={{nproc_per_node: {devices}}}")
    assert "run `nml bench throughput` first" not in out
    first = _notebook(out, "01_pretraining.ipynb")
    # 5 checkpoints x 90 epochs x 1,281,167 images at 1,000 img/s, over the devices
    hours = 5 * 90 * IMAGENET_TRAIN / 1000 / 3600 / devices
    assert f"= {5 * 90 * IMAGENET_TRAIN:,} images, train on resnet50@224px at 1,000.0 img/s -> {hours:,.1f} CPU-h" in first
    assert f"on {devices} device(s) (runtime.nproc_per_node x runtime.nnodes = {devices}" in first
    assert "total: " in first and "CPU-hours (measured on CPU; a GPU is much faster)" in first
    turn = _notebook(out, "04_turn.ipynb")
    assert "hf:facebook/vit-msn-base: no measured rate (cannot be built offline: not cached), not counted" in turn
    assert "(without hf:facebook/vit-msn-base: no measured rate)" in turn
    assert "LP / DivideMix-LP / UNICON-LP / TURN step-1 fits on cached features" in turn
    # feature extraction (02, 03) runs in the notebook's process: one device whatever the runtime's count
    spectral = _notebook(out, "02_spectral_analysis.ipynb")
    assert "on 1 device(s) (its feature extraction runs in the notebook's own process" in spectral
    # 10 checkpoints x the 34 downstream splits' 1,015,598 images (14 ID sets' train + test, DomainNet's
    # real / sketch train and four test splits) at 2,000 img/s, unchanged by the runtime's devices
    images = 10 * 1_015_598
    assert f"= {images:,} images, extract on resnet50@224px at 2,000.0 img/s -> {images / 2000 / 3600:,.1f} CPU-h" in spectral


def test_the_paper_profile_models_are_the_ones_the_issue_names():
    params = load_params("paper", overrides=["data_root=null"], require_data=False)
    models = {m.model: m for m in profile_models(params)}
    assert models["resnet50"] == ThroughputModel("resnet50", models["resnet50"].role, 224, "backbone", 3)
    assert "01 pre-training" in models["resnet50"].role
    expected = [b.name for b in params.turn.backbones] + list(params.nmtune.real_models.encoders)
    assert set(models) == {"resnet50", *expected}


def test_bench_throughput_measures_and_writes_the_default_table(nml_home, capsys, tmp_path, monkeypatch):
    import nml.runner

    monkeypatch.setattr(nml.runner, "profile_models", lambda params: [
        ThroughputModel("nml_resnet4_half", "01 pre-training", 32, "backbone", 1),
        ThroughputModel("hf:facebook/vit-msn-base", "04 fine-tuning")])
    csv = tmp_path / "throughput.csv"
    assert main(["bench", "throughput", "--profile", "smoke", "--batch", "2", "--steps", "1", "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {throughput_path('cpu')}" in out and f"wrote {csv}" in out
    table = pd.read_csv(csv)
    assert list(table.columns) == COLUMNS
    assert table.loc[0, "train_images_per_s"] > 0 and "cannot be built offline" in table.loc[1, "note"]
    assert pd.read_csv(throughput_path("cpu")).equals(table)
    assert main(["bench", "throughput", "--steps", "0"]) == 2
    assert "--steps must be a positive integer" in capsys.readouterr().err
