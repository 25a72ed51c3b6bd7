"""The short way through for JSON cases (grouper.serve.app._App._fast) answers exactly as the
FastAPI route does: same status, headers and bytes for reference cases, lists, explain, another
ruleset, payment and a token; everything else (errors, odd queries, browsers) goes to the route.
And the plain-case check (cases._plain_case) agrees with pydantic wherever it answers."""

import csv
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from grouper.serve import ServeConfig
from grouper.serve.cases import _CASE, _plain_case

from conftest import DATA
from servekit import CASE, both, client, weights_file

ROUTE = {"origin": "http://his.example"}  # no CORS configured: a browser's request goes the usual way


def reference_cases(n: int, ruleset: str = "chs-drg-2.0") -> list[dict]:
    out = []
    with open(DATA / ruleset / "golden_random.csv", encoding="utf-8") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            case = {"case_id": row["case_id"], "sex": row["sex"], "age": int(row["age"]) if i % 2 else row["age"],
                    "dx": row["dx"].split("|") if i % 3 else row["dx"], "px": row["px"].split("|") if row["px"] else []}
            for k in ("age_days", "birth_weight", "los", "discharge"):
                if row[k]:
                    case[k] = row[k]
            out.append(case)
            if len(out) == n:
                break
    return out


def both_ways(c, path: str, body: bytes, headers: dict | None = None):
    """(fast answer, route answer), and whether the fast way answered the first."""
    h = {"content-type": "application/json", **(headers or {})}
    before = c.app.fast_answers
    fast = c.post(path, content=body, headers=h)
    used = c.app.fast_answers == before + 1
    route = c.post(path, content=body, headers={**h, **ROUTE})
    assert c.app.fast_answers == before + used
    return fast, route, used


def same(a, b):
    assert (a.status_code, a.headers.multi_items(), a.content) == (b.status_code, b.headers.multi_items(), b.content)


@pytest.mark.parametrize("path", ["/v1/group", "/v1/group?explain=1", "/v1/group?ruleset=chs-drg-3.0&explain=true",
                                  "/v1/group?explain=0&ruleset=chs-drg-2.0"])
def test_reference_cases_answer_byte_for_byte_as_the_route(path):
    c = both()
    cases = reference_cases(300 if "explain" not in path else 60)
    for case in cases:
        fast, route, used = both_ways(c, path, json.dumps(case).encode())
        assert used and fast.status_code == 200
        same(fast, route)
    fast, route, used = both_ways(c, path, json.dumps(cases[:50], ensure_ascii=False).encode())
    assert used and len(fast.json()) == 50
    same(fast, route)


def test_payment_and_token_answer_as_the_route(tmp_path):
    w = str(weights_file(tmp_path))
    c = client(ServeConfig(rulesets=("chs-drg-2.0",), weights=(("chs-drg-2.0", w),), pack="illustrative-2024",
                           token="s3cret"))
    auth = {"authorization": "Bearer s3cret"}
    for case in [CASE, {**CASE, "cost": 300000}, {**CASE, "los": 2, "cost": 20000.5, "patient_share": 10},
                 {**CASE, "hospital_level": "三级", "insurance_type": None}, {k: v for k, v in CASE.items() if k != "los"}]:
        fast, route, used = both_ways(c, "/v1/group", json.dumps(case).encode(), auth)
        assert used and fast.json()["payment"]["expected_payment_fen"] > 0
        same(fast, route)
    for bad in ({}, {"authorization": "Bearer wrong"}):  # the route says 401
        fast, route, used = both_ways(c, "/v1/group", json.dumps(CASE).encode(), bad)
        assert not used and fast.status_code == 401
        same(fast, route)


@pytest.mark.parametrize("path, body, headers", [
    ("/v1/group", b'{"hospital": 1}', {}),
    ("/v1/group", b'{"sex": [1]}', {}),
    ("/v1/group", b"{bad", {}),
    ("/v1/group", b"\xef\xbb\xbf{}", {}),  # a byte-order mark: json.loads's own message
    ("/v1/group", b"[]", {}),
    ("/v1/group", b'{"age": true, "dx": ["K76.600x006"]}', {}),  # pydantic's int of a bool: the route decides
    ("/v1/group", b'{"age": "\\ud800"}', {}),  # a lone surrogate: pydantic refuses it
    ("/v1/group", b'{"dx": null}', {}),
    ("/v1/group", b'{"cost": -1}', {}),
    ("/v1/group", json.dumps({**CASE, "dx": ["K76.600x006"] * 65}).encode(), {}),
    ("/v1/group?ruleset=chs-drg-9.9", json.dumps(CASE).encode(), {}),
    ("/v1/group?ruleset=", json.dumps(CASE).encode(), {}),
    ("/v1/group?explain=maybe", json.dumps(CASE).encode(), {}),
    ("/v1/group?explain=yes", json.dumps(CASE).encode(), {}),
    ("/v1/group?explain=1&explain=0", json.dumps(CASE).encode(), {}),
    ("/v1/group?other=1", json.dumps(CASE).encode(), {}),
    ("/v1/group", json.dumps(CASE).encode(), {"content-type": "text/plain"}),
    ("/v1/group", json.dumps(CASE).encode(), {"content-type": "application/json; charset=utf-8"}),
    ("/v1/group", json.dumps(CASE).encode(), {"content-type": ""}),
])
def test_everything_else_answers_as_the_route(path, body, headers):
    fast, route, used = both_ways(both(), path, body, headers)
    same(fast, route)
    assert fast.status_code == 200 or not used  # an error answer is always the route's


def test_a_body_over_the_limit_is_handed_on_to_the_route():
    c = client(ServeConfig(rulesets=("chs-drg-2.0",), max_body_bytes=2000))

    def chunks():  # no content-length: the fast way reads until the cap, then hands on what it read
        for _ in range(30):
            yield json.dumps(CASE).encode()
    before = c.app.fast_answers
    r = c.post("/v1/group", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "over 2000 bytes" in r.json()["error"] and c.app.fast_answers == before

    def small():  # several chunks under the cap: answered the short way
        body = json.dumps(CASE).encode()
        yield body[:10]
        yield body[10:]
    r = c.post("/v1/group", content=small(), headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json()["drg"] == "HJ11" and c.app.fast_answers == before + 1


scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=70))
codes = st.lists(st.none() | st.text(max_size=34) | st.integers(), max_size=4) | st.text(max_size=20) | scalars
money = st.none() | st.booleans() | st.integers(-10, 2 * 10**9) | st.floats(-1, 2e9, allow_nan=False) | st.text(max_size=3)
labels = st.none() | st.integers() | st.text(max_size=34)
KINDS = {"case_id": scalars, "sex": scalars, "age": scalars, "age_days": scalars, "birth_weight": scalars,
         "los": scalars, "discharge": scalars, "dept": scalars, "dx": codes, "px": codes, "cost": money,
         "patient_share": money, "hospital_level": labels, "insurance_type": labels, "other": scalars}


@settings(max_examples=400, deadline=None)
@given(case=st.fixed_dictionaries({}, optional=KINDS))
def test_plain_case_agrees_with_pydantic(case):
    mine = _plain_case(case)
    try:
        theirs = _CASE.validate_python(case).model_dump()
    except ValidationError:
        assert mine is None
        return
    if mine is not None:
        assert mine == theirs and [type(v) for v in mine.values()] == [type(theirs[k]) for k in mine]
