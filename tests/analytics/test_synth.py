"""The synthetic province: deterministic, labelled synthetic, and shaped like real discharge data."""

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import grouper
from grouper.analytics.synth import SynthSpec, generate, write_synthetic

SPEC = SynthSpec(cases=60_000, hospitals=30, year=2025, seed=7, ruleset="chs-drg-1.1")


@pytest.fixture(scope="module")
def province(synth_table):
    return synth_table(**dataclasses.asdict(SPEC))


@pytest.fixture(scope="module")
def grouped(province, grouper11):
    return grouper11.group(province, keep=["hospital_level", "los", "discharge", "total_cost"])


def test_same_seed_same_data_other_seed_other_data(province):
    assert pa.Table.from_batches(list(generate(SPEC))).equals(province)
    other = pa.Table.from_batches(list(generate(SynthSpec(cases=60_000, hospitals=30, year=2025, seed=8, ruleset="chs-drg-1.1"))))
    assert not other.equals(province)


def test_parquet_file_is_labelled_synthetic_and_dictionary_encoded(tmp_path):
    path = tmp_path / "p.parquet"
    assert write_synthetic(SynthSpec(cases=5_000, seed=1, ruleset="chs-drg-1.1"), path) == 5_000
    pf = pq.ParquetFile(path)
    meta = pf.schema_arrow.metadata
    assert meta[b"drg.synthetic"] == b"true" and b"SYNTHETIC" in meta[b"drg.description"]
    col = next(i for i in range(pf.metadata.num_columns) if pf.metadata.schema.column(i).path.startswith("dx."))
    assert any("DICTIONARY" in e for e in pf.metadata.row_group(0).column(col).encodings)
    with pytest.raises(FileExistsError):
        write_synthetic(SynthSpec(cases=10, ruleset="chs-drg-1.1"), path)


def test_csv_output_is_groupable_text(tmp_path):
    path = tmp_path / "p.csv"
    write_synthetic(SynthSpec(cases=2_000, seed=3, ruleset="chs-drg-1.1"), path)
    from grouper.jobs.group import group_file
    from grouper.io import open_source

    summary, table = group_file(grouper.Grouper("chs-drg-1.1"), open_source(path), None)
    assert summary.rows == 2_000 and summary.status_counts["grouped"] > 1_950


def test_province_groups_like_a_real_case_mix(province, grouped):
    n = province.num_rows
    status = pc.value_counts(grouped["status"]).to_pylist()
    assert {d["values"]: d["counts"] for d in status}["grouped"] / n > 0.99
    # surgery about a third: ADRG second letter A-N are the surgical groups in most MDCs
    second = pc.utf8_slice_codeunits(grouped["adrg"].cast(pa.string()), 1, 2).to_numpy(zero_copy_only=False)
    surgical = np.isin(second, list("ABCDEFGHJKLMN")).mean()
    assert 0.2 < surgical < 0.5
    # a skewed group frequency: the 10 largest DRGs hold far more than 10/600 of the cases
    counts = sorted((d["counts"] for d in pc.value_counts(grouped["drg"]).to_pylist()), reverse=True)
    assert sum(counts[:10]) / n > 0.1 and len(counts) > 300
    cc = {d["values"]: d["counts"] / n for d in pc.value_counts(grouped["cc_level"]).to_pylist()}
    assert 0.05 < cc["MCC"] < 0.2 and 0.1 < cc["CC"] < 0.4
    n_sdx = pc.list_value_length(province["dx"]).to_numpy() - 1
    assert 4 <= n_sdx.mean() <= 6 and n_sdx.max() >= 20 and n_sdx.min() == 0
    deaths = pc.mean(pc.cast(pc.equal(province["discharge"], "5"), pa.float64())).as_py()
    assert 0.003 < deaths < 0.03


def test_demographics_fit_the_groups(province, grouped):
    rows = grouped.select(["mdc", "case_id"]).to_pylist()
    mdc = np.array([r["mdc"] for r in rows])
    sex = province["sex"].to_numpy()
    assert (sex[mdc == "MDCM"] == 1).all() and (sex[np.isin(mdc, ["MDCN", "MDCO"])] == 2).all()
    age = province["age"].to_numpy()
    newborn = mdc == "MDCP"
    assert newborn.any() and (age[newborn] == 0).all()
    days = province["age_days"].to_numpy(zero_copy_only=False)
    weight = province["birth_weight"].to_numpy(zero_copy_only=False)
    young = newborn & (np.nan_to_num(days, nan=999) <= 28)
    assert not np.isnan(weight[young]).any()


def test_costs_follow_weight_with_outliers_and_levels(grouped):
    cost = grouped["total_cost"].to_numpy()
    level = grouped["hospital_level"].cast(pa.string()).to_numpy(zero_copy_only=False)
    assert cost.min() > 0 and np.median(cost[level == "三级"]) > np.median(cost[level == "一级"])
    ratio = cost / np.median(cost)
    assert (ratio > 10).mean() > 0.001  # some high-cost outliers
    los = grouped["los"].to_numpy()
    assert los.min() >= 1 and 5 < los.mean() < 15


def test_readmissions_and_dates(province):
    pid = province["patient_id"].to_numpy()
    assert len(np.unique(pid)) < len(pid)  # some patients come back
    adm = province["admit_date"].cast(pa.int32()).to_numpy()
    dis = province["discharge_date"].cast(pa.int32()).to_numpy()
    assert (dis - adm == province["los"].to_numpy()).all()
    year = pc.year(province["discharge_date"]).to_numpy()
    assert (year == 2025).all()
