"""The Grouper object: one row out per row in, single cases, explanations, pickling."""

import pickle
import threading

import pyarrow as pa
import pytest

import grouper
from grouper.engine.inputs import InputError
from grouper.engine.grouper import OUTPUT_COLUMNS, kept_name
from grouper.engine.status import Flag

from conftest import DATA, read_cases


def test_output_shape_order_and_metadata(grouper11):
    cases = read_cases(DATA / "chs-drg-1.1" / "sample.csv")
    out = grouper11.group(cases.slice(3, 20), keep=["dept"])
    assert out.num_rows == 20
    assert out.column("case_id").to_pylist() == cases.column("case_id").to_pylist()[3:23]
    assert out.column("dept").to_pylist() == cases.column("dept").to_pylist()[3:23]
    meta = out.schema.metadata
    assert meta[b"drg.ruleset"] == b"chs-drg-1.1" and meta[b"drg.ruleset_version"] == b"1.1"
    assert meta[b"drg.ruleset_fingerprint"] == grouper11.ruleset.fingerprint.encode()
    first = out.slice(0, 1).to_pylist()[0]
    assert first["drg"] == "RC19" and first["drg_name"] == "恶性增生性疾患放射治疗"
    assert first["mdc_name"] == "骨髓增生疾病和功能障碍，低分化肿瘤" and first["status"] == "grouped"


def test_empty_input_gives_empty_output_with_schema(grouper11):
    t = pa.table({"sex": pa.array([], pa.int8()), "age": pa.array([], pa.int8()),
                  "dx": pa.array([], pa.list_(pa.string())), "px": pa.array([], pa.list_(pa.string()))})
    out = grouper11.group(t)
    assert out.num_rows == 0 and "drg" in out.column_names


def test_group_one_equals_group_on_reference_cases(grouper11):
    cases = read_cases(DATA / "chs-drg-1.1" / "golden_edge.csv").slice(0, 400)
    table = grouper11.group(cases).to_pylist()
    for row, case in zip(table, cases.to_pylist()):
        r = grouper11.group_one(case["sex"], case["age"], case["age_days"], case["birth_weight"], case["dx"], case["px"])
        assert (r.status, r.mdc, r.adrg, r.drg, r.cc_level, r.flags) == (
            row["status"], row["mdc"], row["adrg"], row["drg"], row["cc_level"], row["flags"])


def test_unknown_codes_are_reported_not_dropped(grouper11):
    r = grouper11.group_one(sex=1, age=65, dx=["C61.x00", "X99.999"], px=["60.5x02", "00.0000x999"])
    assert r.drg == "MA19"
    assert r.flags == Flag.UNKNOWN_SDX | Flag.UNKNOWN_PX
    assert "其他诊断不在本方案的诊断字典中" in r.reason
    bad = grouper11.group_one(sex=1, age=65, dx=["NOT-A-CODE"])
    assert (bad.status, bad.flags) == ("ungroupable", Flag.UNKNOWN_PDX)


def test_invalid_input_is_explained(grouper11):
    r = grouper11.group_one(sex=3, age=0, age_days=5, birth_weight=None, dx=["P07.100"])
    assert (r.status, r.mdc, r.adrg, r.drg, r.cc_level) == ("invalid", "0000", "00", "0000", None)
    assert r.flags == Flag.SEX_INVALID | Flag.WEIGHT_MISSING
    assert "新生儿缺少出生体重" in r.reason


def test_explain_gives_the_decision_path(grouper11):
    e = grouper11.explain({"sex": 2, "age": 88, "dx": ["K22.301", "K11.901", "E11.900", "I10.x05"],
                           "px": ["96.0800x005"]})
    d = e.as_dict()
    assert d["result"]["drg"] == "GZ13" and d["ruleset"].startswith("chs-drg-1.1")
    mdc = [s for s in d["steps"] if s["step"] == "mdc" and s["matched"]]
    assert [s["mdc"] for s in mdc] == ["MDCG"] and "K22.301" in mdc[0]["why"][0]
    sev = next(s for s in d["steps"] if s["step"] == "severity")
    assert sev["cc"] == ["K11.901"] and sev["cc_level"] == "CC"
    text = e.text()
    assert "MDC MDCG 消化系统疾病及功能障碍 入组" in text and "DRG GZ13" in text and "选定" in text


def test_explain_shows_exclusions_and_validation(grouper11):
    # E11.900 is a CC in the principal's own exclusion table when the principal is a diabetes code
    inv = grouper11.explain(sex=None, age=30, dx=["K35.800"])
    assert inv.result.status == "invalid" and "性别" in inv.text()


def test_pickled_grouper_groups_identically(grouper11):
    cases = read_cases(DATA / "chs-drg-1.1" / "golden_random.csv")
    clone = pickle.loads(pickle.dumps(grouper11))
    assert clone.group(cases).equals(grouper11.group(cases))
    assert clone.explain(sex=1, age=65, dx=["C61.x00"], px=["60.5x02"]).result.drg == "MA19"


def test_concurrent_calls_from_python_threads(grouper11):
    cases = read_cases(DATA / "chs-drg-1.1" / "golden_random.csv")
    expected = grouper11.group(cases, n_threads=1)
    results = [None] * 4

    def work(i):
        results[i] = grouper11.group(cases, n_threads=1)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.equals(expected) for r in results)


def test_input_without_required_column_names_it(grouper11):
    with pytest.raises(grouper.InputError, match="missing required column.*px"):
        grouper11.group(pa.table({"sex": [1], "age": [3], "dx": [["A00.000"]]}))


def test_compiled_arrays_come_from_the_disk_cache_the_second_time(tmp_path, monkeypatch):
    import grouper.engine.cached as core

    monkeypatch.setenv("DRG_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(core, "_COMPILED", {})
    first = grouper.Grouper("chs-drg-1.1")
    assert any(tmp_path.iterdir())
    monkeypatch.setattr(core, "_COMPILED", {})

    def boom(rs):
        raise AssertionError("compiled again although cached")

    monkeypatch.setattr(core, "compile_ruleset", boom)
    again = grouper.Grouper("chs-drg-1.1")
    assert again.group_one(sex=1, age=65, dx=["C61.x00"], px=["60.5x02"]).drg == \
        first.group_one(sex=1, age=65, dx=["C61.x00"], px=["60.5x02"]).drg
    monkeypatch.setenv("DRG_NO_CACHE", "1")
    monkeypatch.setattr(core, "_COMPILED", {})
    with pytest.raises(AssertionError, match="compiled again"):
        grouper.Grouper("chs-drg-1.1")


def test_a_cache_hit_by_name_parses_no_table_and_an_edit_recompiles(tmp_path, monkeypatch):
    """The compiled arrays are keyed on the ruleset's files: a hit reads the bytes and the cached
    arrays only (the Ruleset is loaded when explain needs it); any edited byte is a miss."""
    import shutil
    from pathlib import Path

    import grouper.engine.cached as cached

    monkeypatch.setenv("DRG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cached, "_COMPILED", {})
    folder = tmp_path / "scheme"
    shutil.copytree(Path(grouper.load_ruleset("chs-drg-1.1").path), folder)
    first = grouper.Grouper(folder)
    case = {"sex": 1, "age": 65, "dx": ["C61.x00"], "px": ["60.5x02"]}
    monkeypatch.setattr(cached, "_COMPILED", {})
    loads, compiles = [], []
    real_load, real_compile = cached.load_ruleset, cached.compile_ruleset
    monkeypatch.setattr(cached, "load_ruleset", lambda p: loads.append(p) or real_load(p))
    monkeypatch.setattr(cached, "compile_ruleset", lambda rs: compiles.append(1) or real_compile(rs))
    again = grouper.Grouper(folder)
    assert again.group_one(**case) == first.group_one(**case) and not loads and not compiles
    assert again.explain(case).result.drg == "MA19" and len(loads) == 1  # loaded now, lazily
    drg = folder / "drg.csv"
    drg.write_bytes(drg.read_bytes() + b"\n")  # one more byte: another key
    monkeypatch.setattr(cached, "_COMPILED", {})
    assert grouper.Grouper(folder).group_one(**case) == first.group_one(**case) and len(compiles) == 1


# ----------------------------------------------------------------------------- keep (issue 18, item 3)

def _grouped_before(status="invalid", drg="ZZ99") -> pa.Table:
    """A case that groups to MA19, carrying an older grouping's status and drg columns."""
    return pa.table({"case_id": ["1"], "sex": [1], "age": [65], "dx": [["C61.x00"]], "px": [["60.5x02"]],
                     "status": [status], "drg": [drg], "hospital_id": ["H1"]})


def test_keeping_an_output_column_name_never_replaces_the_result(grouper11):
    out = grouper11.group(_grouped_before(), keep=["status", "drg", "hospital_id"])
    row = out.to_pylist()[0]
    assert (row["status"], row["drg"]) == ("grouped", "MA19")  # the grouper's, not the input's
    assert (row["input_status"], row["input_drg"], row["hospital_id"]) == ("invalid", "ZZ99", "H1")
    assert out.column_names == [*OUTPUT_COLUMNS, "input_status", "input_drg", "hospital_id"]
    assert kept_name("status") == "input_status" and kept_name("hospital_id") == "hospital_id"


def test_keep_all_leaves_output_names_out_and_case_id_is_kept_as_itself(grouper11):
    out = grouper11.group(_grouped_before(), keep=True)
    assert out.column_names == [*OUTPUT_COLUMNS, "sex", "age", "dx", "px", "hospital_id"]
    assert out["status"].to_pylist() == ["grouped"]
    assert grouper11.group(_grouped_before(), keep=["case_id"]).column_names == list(OUTPUT_COLUMNS)


def test_keep_whose_new_name_is_taken_is_refused(grouper11):
    t = _grouped_before().append_column("input_status", pa.array(["x"]))
    with pytest.raises(InputError, match="keep 'status': its output name 'input_status' is already used by "
                                         "kept column 'input_status'"):
        grouper11.group(t, keep=["input_status", "status"])
    with pytest.raises(InputError, match="keep 'input_status'.*already used by kept column 'status'"):
        grouper11.group(t, keep=["status", "input_status"])
    assert grouper11.group(t, keep=["input_status"])["input_status"].to_pylist() == ["x"]


# ----------------------------------------------------------------------------- explain types (item 7)

@pytest.mark.parametrize("case, message", [
    ({"sex": 1, "age": 65, "dx": [1, 2]}, "case field 'dx': expected a list of code strings .* got number 1 in the list"),
    ({"sex": 1, "age": 65, "dx": ["C61.x00"], "px": 5}, "case field 'px': .* got number 5$"),
    ({"sex": 1, "age": 65, "dx": {"a": 1}}, "case field 'dx': .* got object"),
    ({"sex": [1], "age": 65, "dx": ["C61.x00"]}, "case field 'sex': expected a number or text, got list \\[1\\]"),
    ({"sex": 1, "age": True, "dx": ["C61.x00"]}, "case field 'age': .* got boolean true"),
    ({"sex": 1, "age": 65, "dx": ["C61.x00"], "dept": {"x": 1}}, "case field 'dept'"),
])
def test_explain_wrongly_typed_fields_are_input_errors(grouper11, case, message):
    with pytest.raises(InputError, match=message):
        grouper11.explain(case)


def test_explain_accepts_text_numbers_and_joined_codes(grouper11):
    e = grouper11.explain({"sex": "1", "age": 65.0, "dx": "C61.x00", "px": ["60.5x02", None]})
    assert e.result.drg == "MA19"
