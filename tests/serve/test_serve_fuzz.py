"""Whatever a client sends, the answer is a 2xx or a 4xx with a message, never a 500: random
JSON documents, case-shaped objects with random values, and random bytes under each content type."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grouper.serve.app import ARROW

from servekit import CASE, both

FIELDS = ["case_id", "sex", "age", "age_days", "birth_weight", "dx", "px", "los", "discharge", "dept", "cost",
          "patient_share", "hospital_level", "insurance_type"]
scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=80)
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                         | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=6),
                         max_leaves=30)
codes = st.lists(st.none() | st.text(max_size=40) | st.sampled_from(CASE["dx"] + ["", "|", "I10.x00"]), max_size=8)
cases = st.fixed_dictionaries({}, optional={
    "sex": scalars, "age": scalars, "age_days": scalars, "birth_weight": scalars, "los": scalars,
    "discharge": scalars, "dept": scalars, "dx": codes | st.text(max_size=60), "px": codes | st.text(max_size=60),
    "cost": scalars, "case_id": scalars})
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(r):
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        msg = r.json()["error"]
        assert isinstance(msg, str) and msg and "\n" not in msg and "Traceback" not in msg
    return r


@FUZZ
@given(doc=documents, explain=st.booleans(), ruleset=st.sampled_from(["chs-drg-2.0", "chs-drg-3.0"]))
def test_random_json_never_a_500(doc, explain, ruleset):
    body = json.dumps(doc).encode()
    _check(both().post(f"/v1/group?ruleset={ruleset}&explain={int(explain)}", content=body,
                       headers={"content-type": "application/json"}))


@FUZZ
@given(case=cases, explain=st.booleans(), many=st.booleans())
def test_random_cases_never_a_500(case, explain, many):
    r = _check(both().post(f"/v1/group?explain={int(explain)}", json=[case, CASE] if many else case))
    if r.status_code == 200:
        out = r.json()
        first = out[0] if many else out
        assert first["status"] in ("grouped", "invalid", "ungroupable", "ambiguous")
        if many:
            assert out[1]["drg"] == "HJ11"


@FUZZ
@given(data=st.binary(max_size=300), kind=st.sampled_from(["application/json", ARROW, "text/csv", ""]))
def test_random_bytes_never_a_500(data, kind):
    _check(both().post("/v1/group", content=data, headers={"content-type": kind} if kind else {}))


@FUZZ
@given(q=st.text(max_size=70), kind=st.sampled_from(["dx", "px", "", "xx"]), limit=st.integers(-5, 200))
def test_random_code_queries_never_a_500(q, kind, limit):
    r = _check(both().get("/v1/codes", params={"q": q, "kind": kind, "limit": limit} if kind
                          else {"q": q, "limit": limit}))
    if r.status_code == 200:
        assert len(r.json()) <= limit


@pytest.mark.parametrize("doc", [
    {"\n": None},  # found by test_random_json_never_a_500: the name was echoed with its line break
    {"a\r\nb\x00\x1b[31m\u2028": 1},
    {"x" * 5000: 1},
    [CASE, {"\t" + "y" * 100: 1}],
])
def test_unknown_field_names_are_echoed_escaped_and_bounded(doc):
    r = _check(both().post("/v1/group", content=json.dumps(doc).encode(), headers={"content-type": "application/json"}))
    msg = r.json()["error"]
    assert r.status_code == 422 and "not a case field" in msg and msg.isprintable() and len(msg) < 300
    name = next(iter(doc[-1] if isinstance(doc, list) else doc))
    if len(name) <= 40:
        assert msg.startswith(("", "case 1: ")[isinstance(doc, list)] + repr(name) + ": not a case field")
    else:
        assert f"... ({len(name)} characters): not a case field" in msg and "y" * 41 not in msg and "x" * 41 not in msg
    assert all(len(p) <= 43 for e in r.json()["detail"] for p in e["loc"] if isinstance(p, str))


def test_other_echoed_client_text_is_escaped_and_bounded():
    c = both()
    r = _check(c.post("/v1/group", content=b"x", headers={"content-type": "text/\x7fplain" + "z" * 300}))
    assert r.status_code == 415 and r.json()["error"].startswith("content type 'text/\\x7fplain")
    r = _check(c.post("/v1/group?ruleset=a%0Ab", json=CASE))
    assert r.status_code == 404 and r.json()["error"].startswith("no ruleset 'a\\nb' in this service")
    r = _check(c.get("/v1/rulesets/" + "q" * 500 + "%0A/groups"))
    assert r.status_code == 404 and "q" * 41 not in r.json()["error"] and "(501 characters)" in r.json()["error"]
    assert c.post("/v1/group", json={"hospital": "x"}).json()["error"].startswith("hospital: not a case field")
