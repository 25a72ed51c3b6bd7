"""``drg synth --inject``: labelled misconduct planted at chosen hospitals, nothing else changed."""

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

from grouper.analytics.synth import SynthSpec, generate
from grouper.analytics.synth_inject import parse_injection
from grouper.cli.main import main

BAD = ("H0008", "H0022", "H0040")
KINDS = ("upcode", "split", "lowstd")


@pytest.fixture(scope="module")
def planted():
    inj = tuple(parse_injection(f"{k}={','.join(BAD)}") for k in KINDS)
    return (pa.Table.from_batches(list(generate(SynthSpec(60_000, inject=inj)))),
            pa.Table.from_batches(list(generate(SynthSpec(60_000)))))


def test_labels_only_at_the_chosen_hospitals(planted):
    t, _ = planted
    hosp = t["hospital_id"].cast(pa.string())
    for k in KINDS:
        lab = t[f"_label_{k}"]
        assert pc.sum(lab).as_py() > 50
        assert set(hosp.filter(lab).unique().to_pylist()) <= set(BAD)


def test_other_hospitals_keep_their_rows(planted):
    t, plain = planted
    assert t.num_rows == plain.num_rows
    keep = pc.invert(pc.is_in(t["hospital_id"].cast(pa.string()), pa.array(BAD)))
    cols = [c for c in plain.column_names if c != "discharge"]
    assert t.filter(keep).select(cols).equals(plain.filter(keep).select(cols))


def test_split_readmission_follows_a_shortened_stay_of_the_same_patient(planted):
    t, _ = planted
    second = t.filter(t["_label_split"]).to_pylist()[:50]
    by_patient = {}
    for r in t.select(["patient_id", "hospital_id", "admit_date", "discharge_date", "dx"]).to_pylist():
        by_patient.setdefault((r["patient_id"], r["hospital_id"]), []).append(r)
    for r in second:
        before = [s for s in by_patient[(r["patient_id"], r["hospital_id"])]
                  if s["discharge_date"] <= r["admit_date"] and (r["admit_date"] - s["discharge_date"]).days <= 5
                  and s["dx"] == r["dx"]]
        assert before, r


def test_upcoded_cases_gain_one_diagnosis_and_lowstd_are_short(planted):
    t, plain = planted
    up = t["_label_upcode"].to_numpy(zero_copy_only=False)
    n_new = pc.list_value_length(t["dx"]).to_numpy()[up]
    n_old = pc.list_value_length(plain["dx"]).to_numpy()[up]
    assert (n_new == n_old + 1).all()
    low = t["_label_lowstd"].to_numpy(zero_copy_only=False)
    assert (t["los"].to_numpy()[low] <= 2).all()
    assert (pc.list_value_length(t["dx"]).to_numpy()[low] == 1).all()


@pytest.mark.parametrize("text", ["bogus=H0001", "split", "split=", "split=H0001@0.9", "split=H0001@x"])
def test_bad_injection_is_refused(text):
    with pytest.raises(ValueError, match="--inject"):
        parse_injection(text)


def test_cli_injects_and_refuses_unknown_hospitals(tmp_path):
    out = tmp_path / "p.parquet"
    r = CliRunner().invoke(main, ["synth", "-n", "3000", "--hospitals", "10", "-o", str(out), "--inject", "split=H0002"])
    assert r.exit_code == 0, r.output
    import pyarrow.parquet as pq
    assert "_label_split" in pq.read_schema(out).names
    r = CliRunner().invoke(main, ["synth", "-n", "300", "--hospitals", "10", "-o", str(tmp_path / "q.parquet"),
                                  "--inject", "split=H0099"])
    assert r.exit_code == 1 and "H0099" in r.output and not (tmp_path / "q.parquet").exists()
    r = CliRunner().invoke(main, ["synth", "-n", "300", "-o", str(tmp_path / "q.parquet"), "--inject", "nope=H1"])
    assert r.exit_code == 2
