"""`nml bench throughput`'s measurement and table, and the device-hours arithmetic of the dry-run.

No timing is asserted: only that rates are positive, and that the arithmetic on a hand-made table
is exact."""

import math

import pandas as pd
import pytest

from nml._infra.runtime import local
from nml.models.throughput import (
    COLUMNS,
    NotebookCost,
    ThroughputModel,
    Workload,
    estimate_hours,
    format_cost,
    format_throughput_report,
    hours_unit,
    load_throughput,
    measure_throughput,
    measured_rate,
    save_throughput,
    throughput_models,
    throughput_path,
)

TINY = ThroughputModel("nml_resnet4_half", "test", 32, "backbone", 1)


def _table(rows: list[dict], device: str = "cpu") -> pd.DataFrame:
    base = {"role": "", "device": device, "device_name": "test device", "precision": "fp32", "batch": 4,
            "train_images_per_s": math.nan, "extract_images_per_s": math.nan, "note": ""}
    return pd.DataFrame([{**base, **r} for r in rows], columns=COLUMNS)


def test_a_tiny_backbone_gets_positive_rates_and_the_table_is_written(nml_home):
    table = measure_throughput([TINY], runtime=local(), batch=2, warmup=1, steps=1)
    assert list(table.columns) == COLUMNS and len(table) == 1
    row = table.iloc[0]
    assert row["train_images_per_s"] > 0 and row["extract_images_per_s"] > 0
    assert (row["model"], row["image_size"], row["device"], row["precision"], row["batch"]) == ("nml_resnet4_half", 32, "cpu", "fp32", 2)
    assert row["note"] == ""
    path = save_throughput(table)
    assert path == throughput_path("cpu") and path.parent == nml_home / "bench"
    back = load_throughput("cpu")
    assert back is not None and list(back.columns) == COLUMNS
    assert back.iloc[0]["train_images_per_s"] == pytest.approx(row["train_images_per_s"])
    assert "nml_resnet4_half" in format_throughput_report(table)


def test_names_that_cannot_be_built_offline_get_a_row_with_a_note():
    table = measure_throughput([ThroughputModel("hf:facebook/vit-msn-base", "04 fine-tuning"),
                                ThroughputModel("no_such_model_anywhere", "test")], runtime=local(), batch=2, warmup=0, steps=1)
    assert len(table) == 2
    assert table["train_images_per_s"].isna().all() and table["extract_images_per_s"].isna().all()
    msn, unknown = table["note"]
    assert "cannot be built offline" in msn and "facebook/vit-msn-base" in msn
    assert "cannot be built" in unknown and "no_such_model_anywhere" in unknown


def test_no_table_before_one_is_measured(nml_home):
    assert load_throughput("cpu") is None


def test_a_new_measurement_replaces_its_rows_and_keeps_the_others(nml_home):
    save_throughput(_table([{"model": "a", "image_size": 224, "train_images_per_s": 1.0},
                            {"model": "b", "image_size": 224, "train_images_per_s": 2.0}]))
    save_throughput(_table([{"model": "b", "image_size": 224, "train_images_per_s": 3.0}]))
    table = load_throughput("cpu")
    assert sorted(zip(table["model"], table["train_images_per_s"], strict=True)) == [("a", 1.0), ("b", 3.0)]


def test_device_hours_are_images_over_rate_over_devices():
    table = _table([{"model": "m", "image_size": 224, "train_images_per_s": 1000.0, "extract_images_per_s": 2000.0},
                    {"model": "broken", "image_size": None, "note": "cannot be built offline: no config"}])
    work = [Workload("train", "m", 224, "train", 3_600_000),     # 3,600 s at 1,000 img/s
            Workload("extract", "m", 224, "extract", 7_200_000),  # 3,600 s at 2,000 img/s
            Workload("size from the table", "m", None, "extract", 720_000),
            Workload("unmeasured", "broken", None, "train", 1e9)]
    one = estimate_hours(work, table, devices=1)
    assert one.hours == [1.0, 1.0, 0.1, None]
    assert one.rates == [1000.0, 2000.0, 2000.0, None]
    assert one.total == pytest.approx(2.1) and one.unmeasured == ["broken"]
    four = estimate_hours(work, table, devices=4)
    assert four.hours[:3] == [0.25, 0.25, 0.025] and four.total == pytest.approx(0.525)
    with pytest.raises(ValueError, match="devices"):
        estimate_hours(work, table, devices=0)


def test_the_unit_says_where_the_rates_were_measured():
    assert hours_unit(_table([{"model": "m", "image_size": 224}], device="cuda")) == "GPU-hours"
    assert hours_unit(_table([{"model": "m", "image_size": 224}])) == "CPU-hours (measured on CPU; a GPU is much faster)"


def test_rates_prefer_the_measured_size_and_skip_failed_rows():
    table = _table([{"model": "m", "image_size": 224, "train_images_per_s": 10.0},
                    {"model": "m", "image_size": 384, "train_images_per_s": 3.0},
                    {"model": "x", "image_size": 224, "note": "out of memory"}])
    assert measured_rate(table, "m", 384, "train") == 3.0
    assert measured_rate(table, "m", 224, "train") == 10.0
    assert measured_rate(table, "m", 512, "train") == 3.0  # a timm encoder runs at its own size: any row of it
    assert measured_rate(table, "m", 224, "extract") is None
    assert measured_rate(table, "x", 224, "train") is None


def test_the_cost_in_words_with_and_without_a_table():
    cost = NotebookCost([Workload("pre-training: 1 checkpoint x 1 epoch x 3,600,000 images", "m", 224, "train", 3_600_000)],
                        not_counted=["fits on cached features"], reported=[])
    without = "\n".join(format_cost(cost, None, devices=1, device_type="cpu"))
    assert "run `nml bench throughput` first" in without and "CPU-h" not in without
    assert "not counted: fits on cached features" in without and "paper: not reported" in without
    table = _table([{"model": "m", "image_size": 224, "train_images_per_s": 1000.0}], device="cuda")
    lines = format_cost(cost, table, devices=2, device_type="cuda")
    text = "\n".join(lines)
    assert "-> 0.5 GPU-h" in text and "total: 0.5 GPU-hours" in text and "on 2 device(s)" in text


def test_each_model_is_measured_once_with_all_its_roles():
    work = [Workload("", "r50", 224, "train", 1, kind="backbone", role="01 pre-training"),
            Workload("", "r50", 224, "extract", 1, kind="backbone", role="02 extraction"),
            Workload("", "r50", 224, "extract", 1, kind="backbone", role="02 extraction"),
            Workload("", "vit", None, "train", 1, role="04 fine-tuning")]
    models = throughput_models(work)
    assert models == [ThroughputModel("r50", "01 pre-training, 02 extraction", 224, "backbone", 3),
                      ThroughputModel("vit", "04 fine-tuning", None, "encoder", 3)]
