"""The cached job map: units of jobs done together, fixed by the job list, never by the cache."""

from __future__ import annotations

import pytest

from nml._infra import jobs as jobmod
from nml._infra.jobs import result_path, run_cached, work_units

CALLS: list[list[int]] = []


def square(job: int) -> int:
    return job * job


def square_many(batch: list[int]) -> list[int]:
    CALLS.append(list(batch))
    return [job * job for job in batch]


def parity(job: int) -> int:
    return job % 2


def key(job: int) -> str:
    return f"job{job}"


def test_units_cut_each_group_into_near_equal_pieces_in_job_order():
    jobs = list(range(10))
    keys = [key(j) for j in jobs]
    assert work_units(jobs, keys, None, 4) == [[i] for i in range(10)]
    assert work_units(jobs, keys, lambda j: 0, 4) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert work_units(jobs, keys, parity, 3) == [[0, 2, 4], [6, 8], [1, 3, 5], [7, 9]]
    # a job asked twice is done once, in its first place
    assert work_units([1, 2, 1], ["a", "b", "a"], lambda j: 0, 8) == [[0, 1]]


def test_grouped_jobs_resume_in_the_same_units(nml_home):
    CALLS.clear()
    jobs = list(range(7))
    first = run_cached(jobs, key, square, folder="t", group=parity, work_many=square_many, max_group=2)
    assert first == [j * j for j in jobs]
    assert sorted(map(tuple, CALLS)) == [(0, 2), (1, 3), (4, 6), (5,)]
    # an interrupted run lost one result: its whole unit is redone (same companions), nothing else
    CALLS.clear()
    result_path("t", key(4)).unlink()
    again = run_cached(jobs, key, square, folder="t", group=parity, work_many=square_many, max_group=2)
    assert again == first and CALLS == [[4, 6]]
    # a warm run only reads
    CALLS.clear()
    assert run_cached(jobs, key, square, folder="t", group=parity, work_many=square_many, max_group=2) == first
    assert CALLS == []


def test_duplicate_jobs_are_done_once_and_returned_in_every_place(nml_home):
    CALLS.clear()
    out = run_cached([3, 3, 4], key, square, folder="d", group=lambda j: 0, work_many=square_many)
    assert out == [9, 9, 16] and CALLS == [[3, 4]]


def test_grouped_parallel_matches_serial(nml_home, monkeypatch):
    serial = run_cached(list(range(6)), key, square, folder="s", group=parity, work_many=square_many, max_group=2)
    monkeypatch.setenv("NML_HOME", str(nml_home.parent / "other"))
    parallel = run_cached(list(range(6)), key, square, folder="s", n_jobs=2, group=parity, work_many=square_many,
                          max_group=2)
    assert parallel == serial


def test_group_and_work_many_go_together():
    with pytest.raises(ValueError, match="group and work_many"):
        run_cached([1], key, square, folder="x", group=parity)
    assert jobmod.work_units([], [], None, 3) == []


def test_cached_result_computes_once_per_key(nml_home):
    from nml._infra.jobs import cached_result

    calls = []

    def compute():
        calls.append(1)
        return {"value": len(calls)}

    assert cached_result("memo", "k1", compute, desc="memo") == {"value": 1}
    assert cached_result("memo", "k1", compute, desc="memo") == {"value": 1}  # read, not computed
    assert cached_result("memo", "k2", compute, desc="memo") == {"value": 2}
    assert len(calls) == 2
