"""Where the cached job map runs: joblib here or tasks on Ray, with the same numbers; a job that
keeps failing is retried, then named, and what finished before it stays cached.

One local Ray instance (2 CPUs) serves the whole module (it takes 10-20 s to start; the tests that
use it are marked slow); every Ray test is in this file, so ``pytest -n 2 --dist loadfile`` never
starts two.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from nml._infra import jobs as jobmod
from nml._infra.jobs import (
    JobFailed,
    configure_executor,
    current_executor,
    result_path,
    run_cached,
    use_executor,
)
from nml._infra.paths import nml_home as cache_home
from nml._infra.runtime_config import ExecutorConfig

RAY = ExecutorConfig(kind="ray")


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray instance of 2 CPUs, started the way ``run_cached`` starts one, shut at the end."""
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)  # Ray's workers cannot import a test module by name
    jobmod._ray(RAY, n_jobs=2)
    assert ray.cluster_resources()["CPU"] == 2
    yield ray
    ray.shutdown()
    cloudpickle.unregister_pickle_by_value(module)


# -------------------------------------------------------------------------------- the setting


def test_the_default_executor_is_joblib_and_a_block_restores_the_previous_one():
    assert current_executor().kind == "joblib" and current_executor() == ExecutorConfig()
    with use_executor(ExecutorConfig(kind="ray", retries=3)) as cfg:
        assert current_executor() is cfg and cfg.kind == "ray" and cfg.retries == 3
        with use_executor(None):
            assert current_executor() == ExecutorConfig()
        assert current_executor().retries == 3
    assert current_executor() == ExecutorConfig()


def test_notebook_setup_takes_the_executor_from_the_params(tmp_path, monkeypatch):
    from nml import notebook
    from nml.config import load_raw

    for quiet in ("log_to_stdout", "summarize_cache_per_cell", "set_provenance"):  # no process-wide side effects
        monkeypatch.setattr(notebook, quiet, lambda *args, **kwargs: None)
    raw, _ = load_raw("smoke")
    raw["executor"] = {"kind": "ray", "address": "head:6379", "cpus_per_job": 0.5, "gpus_per_job": 0.25,
                       "retries": 3}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with use_executor(None):
        params, _ = notebook.setup(params_path=str(path), output_dir=str(tmp_path / "out"))
        assert current_executor() == params.executor
        assert (current_executor().kind, current_executor().gpus_per_job) == ("ray", 0.25)
        params.executor.retries = 0  # the executor is a copy: later edits of the params do not leak in
        assert current_executor().retries == 3
        notebook.setup("smoke", output_dir=str(tmp_path / "out"))
        assert current_executor() == ExecutorConfig()  # the profiles leave the section out: joblib
    assert current_executor().kind == "joblib"


# -------------------------------------------------------------------------------- failures

# A job is (name, folder of attempt marks, whether it fails). Each attempt leaves a line in
# <folder>/<name>.txt (the workers are other processes); a failing job first waits for every other
# job's mark, so the others have finished when it gives up.
GOOD = ("a", "b", "c")


def job_key(job: tuple) -> str:
    return f"job-{job[0]}"


def flaky(job: tuple) -> str:
    name, marks, fails = job
    marks = Path(marks)
    with open(marks / f"{name}.txt", "a") as f:
        f.write("attempt\n")
    if not fails:
        return name.upper()
    deadline = time.monotonic() + 60
    while not all((marks / f"{g}.txt").exists() for g in GOOD) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the others' results reach the driver
    raise ValueError(f"bad input in job {name}")


def _attempts(marks: Path, name: str) -> int:
    path = marks / f"{name}.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.parametrize("kind", ["joblib", pytest.param("ray", marks=pytest.mark.slow)])
def test_a_failing_job_is_retried_then_named_and_the_others_stay_cached(kind, nml_home, tmp_path, request):
    if kind == "ray":
        request.getfixturevalue("ray_local")
    marks = tmp_path / "marks"
    marks.mkdir()
    jobs = [("bad", str(marks), True), *[(g, str(marks), False) for g in GOOD]]
    cfg = ExecutorConfig(kind=kind, retries=2)
    with use_executor(cfg), pytest.raises(JobFailed) as info:
        run_cached(jobs, job_key, flaky, folder="flaky", n_jobs=2, desc="flaky grid")
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert "flaky grid" in message and "job-bad" in message and "('bad'," in message
    assert "ValueError: bad input in job bad" in message and "3 attempts" in message
    assert info.value.__cause__ is not None  # the worker's error (and its traceback) is chained
    assert _attempts(marks, "bad") == 1 + cfg.retries  # retried exactly `retries` times
    assert [_attempts(marks, g) for g in GOOD] == [1, 1, 1]
    assert [result_path("flaky", f"job-{g}").exists() for g in GOOD] == [True, True, True]
    assert not result_path("flaky", "job-bad").exists()
    # fixed, the run resumes: only the failed job is done again
    fixed = [("bad", str(marks), False), *jobs[1:]]
    with use_executor(cfg):
        assert run_cached(fixed, job_key, flaky, folder="flaky", n_jobs=2, desc="flaky grid") == ["BAD", "A", "B", "C"]
    assert _attempts(marks, "bad") == 2 + cfg.retries and [_attempts(marks, g) for g in GOOD] == [1, 1, 1]


def test_in_this_process_no_retries_means_one_attempt(nml_home, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    for g in GOOD:
        (marks / f"{g}.txt").write_text("")  # the failing job does not wait for jobs that come after it
    with use_executor(ExecutorConfig(retries=0)), pytest.raises(JobFailed, match="job-bad") as info:
        run_cached([("a", str(marks), False), ("bad", str(marks), True)], job_key, flaky, folder="f", desc="serial")
    assert isinstance(info.value.__cause__, ValueError)
    assert _attempts(marks, "bad") == 1 and result_path("f", "job-a").exists()


def square(job: int) -> int:
    return job * job


def square_many(batch: list[int]) -> list[int]:
    return [job * job for job in batch]


def where(job: int) -> str:
    return os.environ.get("NML_HOME", "")


@pytest.mark.slow
def test_ray_runs_units_and_sees_the_callers_cache_home(ray_local, nml_home):
    jobs = list(range(7))
    with use_executor(RAY):
        out = run_cached(jobs, lambda j: f"k{j}", square, folder="sq", n_jobs=1, group=lambda j: j % 2,
                         work_many=square_many, max_group=2)
        assert out == [j * j for j in jobs] and result_path("sq", "k6").exists()
        assert set(run_cached([1, 2], lambda j: f"w{j}", where, folder="where")) == {str(nml_home)}


def test_local_callers_stay_in_this_process_on_ray(monkeypatch, nml_home):
    def no_ray(*args, **kwargs):
        raise AssertionError("a local run went to Ray")

    monkeypatch.setattr(jobmod, "_run_on_ray", no_ray)
    calls = []
    with use_executor(RAY):
        assert jobmod.cached_result("memo", "k", lambda: calls.append(1) or os.getpid(), desc="memo") == os.getpid()
        assert run_cached([2], str, square, folder="l", local=True) == [4]
    assert calls == [1]


# -------------------------------------------------------------------------------- chapter grids


def _mirror(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> None:
    """``dst`` as symlinks to the files of ``src`` (but not its folders ``skip``): the chapters'
    inputs read from the real cache, written (atomically: the link is replaced) to ``dst`` only."""
    dst.mkdir(parents=True, exist_ok=True)
    for root, _, files in os.walk(src):
        rel = Path(root).relative_to(src)
        if rel.parts and rel.parts[0] in skip:
            continue
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            (dst / rel / name).symlink_to(Path(root) / name)


@pytest.fixture
def fresh_home(tmp_path, monkeypatch):
    """``fresh_home(name, results)``: a new NML_HOME whose checkpoints and features are those of
    the real cache (computed once if cold) but with no ``results`` folder: the grid's fits are done
    anew in each home."""
    real = cache_home()

    def make(name: str, results: str) -> Path:
        home = tmp_path / name
        home.mkdir()
        (home / "assets").symlink_to(real / "assets", target_is_directory=True)
        _mirror(real / "checkpoints", home / "checkpoints")
        _mirror(real / "features", home / "features", skip=(results,))
        monkeypatch.setenv("NML_HOME", str(home))
        return home

    return make


def _assert_same_numbers(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Every column but the measured seconds equal, predictions included."""
    timings = [c for c in a.columns if c.endswith("seconds")]
    arrays = [c for c in a.columns if c not in timings and a[c].dtype == object
              and any(isinstance(v, np.ndarray) for v in a[c])]
    plain = [c for c in a.columns if c not in timings and a[c].dtype != object]
    assert list(a.columns) == list(b.columns) and len(a) == len(b) > 0
    pd.testing.assert_frame_equal(a[plain].reset_index(drop=True), b[plain].reset_index(drop=True), check_exact=True)
    for c in arrays:
        for x, y in zip(a[c], b[c], strict=True):
            if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
                assert np.array_equal(x, y), c
            else:
                assert (pd.isna(x) and pd.isna(y)) or x == y, c  # no array for this row (None, NaN)


def _on_ray_counted(monkeypatch) -> list[int]:
    """Units handed to Ray, per run_cached call (spied, then run)."""
    counted, real = [], jobmod._run_on_ray

    def spy(cfg, n_jobs, units, desc, arrived):
        counted.append(len(units))
        return real(cfg, n_jobs, units, desc, arrived)

    monkeypatch.setattr(jobmod, "_run_on_ray", spy)
    return counted


def _smoke_inputs():
    from nml.chapters.ch01_pretraining import run as pretraining
    from nml.config import load_params

    params = load_params("smoke")
    data = pretraining.load_pretrain_data(params)
    return params, data


def _on_both_executors(grid, folder, fresh_home, monkeypatch):
    """``grid()`` into a fresh ``folder`` cache with joblib, then again with Ray; (joblib's table,
    Ray's table, the units each Ray call ran)."""
    fresh_home("joblib", folder)
    with use_executor(ExecutorConfig(kind="joblib")):
        by_joblib = grid()
    fresh_home("ray", folder)
    on_ray = _on_ray_counted(monkeypatch)
    with use_executor(RAY):
        by_ray = grid()
    return by_joblib, by_ray, on_ray


@pytest.mark.slow
def test_chapter_03_main_grid_on_ray_equals_joblib(ray_local, fresh_home, monkeypatch):
    from nml.chapters.ch01_pretraining import run as pretraining
    from nml.chapters.ch02_spectral import run as spectral
    from nml.chapters.ch03_nmtune import run as nmtune

    def grid():
        params, data = _smoke_inputs()
        params.nmtune.n_jobs = 2
        checkpoints = pretraining.pretrain_all(params, data)
        downstream = spectral.load_downstream_data(params, data.heldout_train_indices, validation=True)
        return nmtune.tune_checkpoints(checkpoints, downstream, params)  # LP / MLP / NMTune, every checkpoint

    by_joblib, by_ray, on_ray = _on_both_executors(grid, "tuning", fresh_home, monkeypatch)
    assert sum(on_ray) > 1 and set(by_ray["method"]) == {"LP", "MLP", "NMTune"}
    _assert_same_numbers(by_joblib, by_ray)


@pytest.mark.slow
def test_chapter_04_table2_on_ray_equals_joblib(ray_local, fresh_home, monkeypatch):
    from nml.chapters.ch04_turn import run as turn_chapter

    def grid():
        params, data = _smoke_inputs()
        params.turn.n_jobs = 2
        ctx = turn_chapter.prepare(params, turn_chapter.clean_checkpoints(params, data), data)
        return turn_chapter.table2(ctx)  # every method (FFT, LP, two-network LP, TURN) × noise setting

    by_joblib, by_ray, on_ray = _on_both_executors(grid, "turn", fresh_home, monkeypatch)
    assert on_ray == [len(by_ray)] and "turn" in set(by_ray["method"])
    _assert_same_numbers(by_joblib, by_ray)


def test_configure_executor_returns_the_previous_one():
    previous = configure_executor(ExecutorConfig(retries=4))
    try:
        assert current_executor().retries == 4
    finally:
        assert configure_executor(previous).retries == 4
    assert current_executor() == previous
