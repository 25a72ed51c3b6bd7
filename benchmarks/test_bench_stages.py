"""``bench_stages.py`` on a small province: every stage is timed and the run writes what
``drg group`` writes (the stages are the command's own sequence)."""

from __future__ import annotations

import pyarrow.parquet as pq

import grouper
from bench_stages import STAGES, main, stages
from workload import build_table


def test_stages_time_every_stage_and_write_the_commands_output(tmp_path):
    src = tmp_path / "cases.parquet"
    pq.write_table(build_table(3000).drop_columns(["case_id"]), src, row_group_size=1000)
    out = tmp_path / "out.parquet"
    got = stages(src, out, "chs-drg-1.1")
    assert set(got) == set(STAGES) and all(v >= 0 for v in got.values())
    from grouper.jobs.group import group_files

    want = tmp_path / "want.parquet"
    group_files(grouper.Grouper("chs-drg-1.1", n_threads=1), [src], want)
    assert pq.read_table(out).equals(pq.read_table(want))
    best = main([str(src), "--repeat", "1", "-r", "chs-drg-1.1"])
    assert best["total"] == sum(best[k] for k in STAGES)
