"""The HTTP API in process: every endpoint, every error answer, and the OpenAPI document."""

import json

import pyarrow as pa
import pytest

import grouper
from grouper.serve import ServeConfig
from grouper.serve.app import ARROW

from conftest import DATA, read_cases
from servekit import CASE, both, client, weights_file


def test_one_case_matches_group_one():
    r = both().post("/v1/group", json=CASE)
    assert r.status_code == 200
    body = r.json()
    want = grouper.Grouper("chs-drg-2.0").group_one(**{k: v for k, v in CASE.items() if k != "case_id"})
    assert (body["status"], body["mdc"], body["adrg"], body["drg"], body["cc_level"]) == \
        (want.status, want.mdc, want.adrg, want.drg, want.cc_level) == ("grouped", "MDCH", "HJ1", "HJ11", "MCC")
    assert body["drg_name"] == want.drg_name and body["mdc_name"] == want.mdc_name
    assert body["case_id"] == "A001" and body["ruleset"] == "chs-drg-2.0" and body["status_name"] == "分组成功"
    assert body["reasons"] == [] and "payment" not in body and "explain" not in body


def test_list_of_cases_in_order_and_other_ruleset():
    cases = [CASE, {**CASE, "case_id": 2, "dx": "|".join(CASE["dx"])}, {"case_id": "bad", "sex": 3, "dx": []}]
    r = both().post("/v1/group?ruleset=chs-drg-3.0", json=cases)
    assert r.status_code == 200
    out = r.json()
    assert [o["case_id"] for o in out] == ["A001", 2, "bad"]
    assert [o["drg"] for o in out[:2]] == ["HJ13", "HJ13"] and out[0]["cc_level"] == "CC"
    assert out[2]["status"] == "invalid"
    assert {x["flag"] for x in out[2]["reasons"]} >= {"SEX_INVALID", "NO_DIAGNOSIS"}


def test_explain_gives_the_path_and_the_deciding_diagnosis():
    body = both().post("/v1/group?explain=1", json=CASE).json()
    e = body["explain"]
    assert body["drg"] == "HJ11"
    assert e["severity"]["decided_by"] == [{"code": "G62.806", "name": "感染性周围神经病"}]
    assert e["severity"]["excluded"][0]["code"] == "K76.600x006"
    assert any(s["step"] == "drg" and s["matched"] and s["drg"] == "HJ11" for s in e["steps"])
    assert "DRG HJ11" in e["text"] and "MCC G62.806" in e["text"]
    assert both().post("/v1/group?explain=0", json=CASE).json().get("explain") is None


def test_unknown_codes_are_warnings_not_errors():
    body = both().post("/v1/group", json={**CASE, "dx": CASE["dx"] + ["ZZZ.999"]}).json()
    assert body["drg"] == "HJ11" and [x["flag"] for x in body["reasons"]] == ["UNKNOWN_SDX"]


def test_arrow_stream_in_arrow_stream_out():
    cases = read_cases(DATA / "chs-drg-2.0" / "golden_random.csv").slice(0, 500)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, cases.schema) as w:
        w.write_table(cases)
    r = both().post("/v1/group", content=sink.getvalue().to_pybytes(), headers={"content-type": ARROW})
    assert r.status_code == 200 and r.headers["content-type"] == ARROW
    got = pa.ipc.open_stream(r.content).read_all()
    want = grouper.Grouper("chs-drg-2.0").group(cases)
    assert got.num_rows == 500
    for c in ("case_id", "status", "drg", "cc_level", "flags"):
        assert got[c].to_pylist() == want[c].to_pylist()


def test_rulesets_and_groups():
    rs = both().get("/v1/rulesets").json()
    assert [r["name"] for r in rs] == ["chs-drg-2.0", "chs-drg-3.0"] and rs[0]["default"] and not rs[1]["default"]
    assert not rs[0]["weights"]
    g = both().get("/v1/rulesets/chs-drg-3.0/groups").json()
    assert g["ruleset"] == "chs-drg-3.0" and len(g["mdcs"]) == 26
    assert len({a["code"] for a in g["adrgs"]}) == 492 and len(g["drgs"]) == 825
    assert {"code": "HJ13", "name": g["drgs"][[d["code"] for d in g["drgs"]].index("HJ13")]["name"],
            "adrg": "HJ1"} in g["drgs"]


def test_codes_search_by_code_then_name():
    hits = both().get("/v1/codes", params={"q": "g62.80", "kind": "dx"}).json()
    assert hits[0]["code"].startswith("G62.80") and all(h["kind"] == "dx" for h in hits)
    assert {"kind": "dx", "code": "G62.806", "name": "感染性周围神经病"} in hits
    named = both().get("/v1/codes", params={"q": "周围神经病", "limit": 5}).json()
    assert 0 < len(named) <= 5 and all("周围神经病" in h["name"] for h in named)
    px = both().get("/v1/codes", params={"q": "52.2100", "kind": "px", "ruleset": "chs-drg-3.0"}).json()
    assert px and all(h["kind"] == "px" and h["code"].startswith("52.2100") for h in px)
    assert both().get("/v1/codes", params={"q": "没有这种名字的诊断"}).json() == []


def test_healthz_and_ui():
    assert both().get("/healthz").json() == {"status": "ok", "version": grouper.__version__,
                                             "rulesets": ["chs-drg-2.0", "chs-drg-3.0"]}
    r = both().get("/", follow_redirects=False)
    assert r.status_code in (302, 307) and r.headers["location"] == "/ui/"
    page = both().get("/ui/")
    assert page.status_code == 200 and "分组" in page.text and "http" not in page.text.replace("http-equiv", "")


def test_openapi_document_has_schemas_and_examples():
    doc = both().get("/openapi.json").json()
    assert set(doc["paths"]) >= {"/v1/group", "/v1/rulesets", "/v1/rulesets/{name}/groups", "/v1/codes", "/healthz"}
    post = doc["paths"]["/v1/group"]["post"]
    body = post["requestBody"]["content"]
    assert ARROW in body and body["application/json"]["examples"]["one"]["value"]["dx"][0] == "K76.600x006"
    assert "dx" in body["application/json"]["schema"]["oneOf"][0]["properties"]
    assert {"200", "401", "413", "422"} <= set(post["responses"])
    schemas = doc["components"]["schemas"]
    assert {"GroupOut", "PaymentOut", "ErrorOut", "CodeHit", "RulesetOut"} <= set(schemas)
    assert schemas["GroupOut"]["examples"][0]["drg"] == "HJ11"
    assert both().get("/docs").status_code == 404  # Swagger UI would load a CDN


@pytest.mark.parametrize("body, status, message", [
    (b"{bad", 400, "not valid JSON"),
    (b"\xff\xfe", 400, "not UTF-8"),
    (b'{"age": NaN}', 400, "NaN is not a JSON number"),
    (b'{"case_id": 1e999}', 400, "1e999 is out of range"),
    (b'{"age": ' + b"9" * 5000 + b"}", 400, "not valid JSON"),
    (b"[" * 100000, 400, "not valid JSON"),
    (b"[]", 422, "empty"),
    (b"5", 422, "expected a case"),
    (b'{"sex": [1]}', 422, "sex: expected a number or text"),
    (b'{"dx": [1, 2]}', 422, "dx: expected a list of code strings"),
    (b'{"dx": ["' + b"A" * 40 + b'"]}', 422, "dx"),
    (b'{"hospital": "x"}', 422, "hospital: not a case field"),
    (b'[{"sex": 1}, {"cost": -5}]', 422, "case 1: cost"),
])
def test_malformed_json_is_a_4xx_with_a_message(body, status, message):
    r = both().post("/v1/group", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status and message in r.json()["error"]


def test_bounds_answer_413_and_422():
    small = client(ServeConfig(rulesets=("chs-drg-2.0",), max_cases=3, max_codes=4, max_body_bytes=2000))
    r = small.post("/v1/group", json=[CASE] * 4)
    assert r.status_code == 413 and "at most 3" in r.json()["error"]
    r = small.post("/v1/group", json={**CASE, "dx": CASE["dx"] + ["I10.x00"]})
    assert r.status_code == 422 and r.json()["error"] == "dx: 5 codes; at most 4 per case"
    r = small.post("/v1/group", json={**CASE, "px": "|".join(["52.2100x001"] * 5)})
    assert r.status_code == 422 and "px: 5 codes" in r.json()["error"]
    r = small.post("/v1/group", content=json.dumps([CASE] * 30), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "at most 2000" in r.json()["error"]

    def chunks():  # no content-length: the cap holds while reading
        for _ in range(30):
            yield json.dumps(CASE).encode()
    r = small.post("/v1/group", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "over 2000 bytes" in r.json()["error"]


def test_other_error_answers():
    c = both()
    r = c.post("/v1/group?ruleset=../../etc", json=CASE)
    assert r.status_code == 404 and "no ruleset '../../etc'" in r.json()["error"]
    assert c.get("/v1/rulesets/chs-drg-1.1/groups").status_code == 404  # bundled, but not served
    r = c.post("/v1/group", content=b"x", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["error"]
    r = c.post("/v1/group", content=b"not arrow", headers={"content-type": ARROW})
    assert r.status_code == 400 and "not an Arrow IPC stream" in r.json()["error"]
    t = pa.table({"sex": [1], "age": [3]})  # no dx column
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, t.schema) as w:
        w.write_table(t)
    r = c.post("/v1/group", content=sink.getvalue().to_pybytes(), headers={"content-type": ARROW})
    assert r.status_code == 422 and "dx" in r.json()["error"]
    assert c.get("/v1/codes").status_code == 422 and "q" in c.get("/v1/codes").json()["error"]
    assert c.get("/v1/codes?q=a&kind=zz").status_code == 422
    assert c.get("/v1/codes?q=a&limit=0").status_code == 422
    assert c.get("/v1/nothing").status_code == 404 and c.get("/v1/nothing").json() == {"error": "Not Found"}
    assert c.get("/v1/group").status_code == 405


def test_bearer_token():
    c = client(ServeConfig(rulesets=("chs-drg-2.0",), token="s3cret"))
    for r in (c.post("/v1/group", json=CASE), c.get("/v1/rulesets"),
              c.get("/v1/codes?q=A", headers={"authorization": "Bearer wrong"}),
              c.get("/v1/codes?q=A", headers={"authorization": "Basic s3cret"})):
        assert r.status_code == 401 and "bearer token" in r.json()["error"]
    ok = c.post("/v1/group", json=CASE, headers={"authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and ok.json()["drg"] == "HJ11"
    assert c.get("/healthz").status_code == 200 and c.get("/ui/").status_code == 200


def test_cors_off_unless_configured():
    pre = {"origin": "http://his.example", "access-control-request-method": "POST"}
    off = both().options("/v1/group", headers=pre)
    assert "access-control-allow-origin" not in off.headers
    on = client(ServeConfig(rulesets=("chs-drg-2.0",), cors_origins=("http://his.example",)))
    r = on.options("/v1/group", headers=pre)
    assert r.headers["access-control-allow-origin"] == "http://his.example"
    r = on.options("/v1/group", headers={**pre, "origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_payment_with_weights_and_pack(tmp_path):
    w = str(weights_file(tmp_path))
    c = client(ServeConfig(rulesets=("chs-drg-2.0", "chs-drg-3.0"), weights=(("chs-drg-2.0", w),),
                           pack="illustrative-2024"))
    p = c.post("/v1/group", json=CASE).json()["payment"]
    # typical case of HJ11: cost = mean cost 45,000; r = 10,500/RW, k = 1 -> 4.2 x 10,500 = 44,100 yuan
    assert p["rw"] == 4.2 and p["cost_assumed"] and p["cost_fen"] == 4_500_000
    assert p["case_type"] == "normal" and p["case_type_name"] == "正常病例"
    assert p["payment_standard_fen"] == p["expected_payment_fen"] == 4_410_000 and p["illustrative"]
    assert p["los"] == 9 and not p["los_assumed"]
    typical = c.post("/v1/group", json={k: v for k, v in CASE.items() if k != "los"}).json()["payment"]
    assert typical["los"] == 14 and typical["los_assumed"] and typical["expected_payment_fen"] == 4_410_000
    short = c.post("/v1/group", json={**CASE, "los": 2, "cost": 20000}).json()["payment"]
    # short stay (LOS < 30 % of the mean 14 days): prorated, 44,100 x 2 / 14 = 6,300 yuan
    assert short["case_type"] == "short_stay" and short["expected_payment_fen"] == 630_000
    high = c.post("/v1/group", json={**CASE, "cost": 300000}).json()["payment"]
    # H1: r x [RW + (cost - H x mean cost) / C̄] with H = 2 (RW > 2): 10,500 x (4.2 + (300,000 - 90,000) / 10,000)
    assert high["case_type"] == "high" and high["expected_payment_fen"] == 26_460_000 and not high["cost_assumed"]
    assert c.post("/v1/group?ruleset=chs-drg-3.0", json=CASE).json().get("payment") is None  # no weights there
    rs = c.get("/v1/rulesets").json()
    assert [r["weights"] for r in rs] == [True, False]
    drgs = {d["code"]: d for d in c.get("/v1/rulesets/chs-drg-2.0/groups").json()["drgs"]}
    assert drgs["HJ11"]["rw"] == 4.2 and drgs["HJ13"]["rw"] == 2.5 and drgs["AA19"]["rw"] is None


def _ipc(t: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, t.schema) as w:
        w.write_table(t)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize("columns, status, message", [
    ({"dx": pa.array([1])}, 422, "column 'dx' has type int64"),
    ({"dx": pa.array([{"a": 1}])}, 422, "column 'dx' has type struct"),
    ({"dx": pa.array([[["a"]]])}, 422, "column 'dx' has type list<item: list"),
    ({"dx": ["K76.600x006"], "sex": pa.array([True])}, 422, "column 'sex' has type bool"),
    ({"dx": ["K76.600x006"], "age": [1.5]}, 200, "invalid"),
    ({"dx": pa.array([None], pa.null())}, 200, "invalid"),
    ({"dx": pa.array(["K76.600x006"]).dictionary_encode()}, 200, "grouped"),
])
def test_arrow_tables_of_the_wrong_shape(columns, status, message):
    t = pa.table({"sex": [1], "age": [3], "px": pa.array([[]], pa.list_(pa.string())), **columns})
    r = both().post("/v1/group", content=_ipc(t), headers={"content-type": ARROW})
    assert r.status_code == status
    if status == 200:
        assert pa.ipc.open_stream(r.content).read_all()["status"].to_pylist() == [message]
    else:
        assert message in r.json()["error"]


def test_arrow_bounds():
    small = client(ServeConfig(rulesets=("chs-drg-2.0",), max_arrow_cases=10, max_arrow_bytes=4000))
    t = pa.table({"sex": [1] * 11, "age": [30] * 11, "dx": ["K76.600x006"] * 11, "px": [""] * 11})
    r = small.post("/v1/group", content=_ipc(t), headers={"content-type": ARROW})
    assert r.status_code == 413 and "11 cases in one request; at most 10" in r.json()["error"]
    r = small.post("/v1/group", content=_ipc(t.slice(0, 10)), headers={"content-type": ARROW})
    assert r.status_code == 200 and pa.ipc.open_stream(r.content).read_all().num_rows == 10
    big = pa.table({"sex": [1] * 10, "age": [30] * 10, "dx": ["K76.600x006" * 50] * 10, "px": [""] * 10})
    assert small.post("/v1/group", content=_ipc(big), headers={"content-type": ARROW}).status_code == 413
