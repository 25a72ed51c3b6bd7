"""One case's weight and payment (issue 14): ``CaseQuoter`` on the worked examples of the domain
notes (section 3.7, "Worked examples": r = 2.1e9 / 200,000 = 10,500 yuan/RW, C̄ = 10,000, k = 1),
money in whole fen, and ``group_one(quote=...)`` equal to the batch settlement of the same cases."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import grouper
from grouper.payment.drg import CaseQuoter, Quote, settle
from grouper.payment.pack import load_pack

from conftest import DATA, read_cases

PACK = load_pack("illustrative-2024")
# the examples' groups (domain notes 3.7): RW and C̄_g; an average stay of 7 / 10 days
WEIGHTS = pa.table({"drg": ["FR25", "HH11"], "rw": [0.8, 2.5], "mean_cost": [8000.0, 25000.0],
                    "mean_los": [7.0, 10.0], "n": [100, 100]})


@pytest.fixture(scope="module")
def quoter():
    return CaseQuoter(WEIGHTS, PACK)


def test_example_1_normal(quoter):
    # RW 0.80, cost 7,200, patient share 1,900: P = 0.8 x 10,500 = 8,400, fund 6,500, margin +1,200
    q = quoter.quote({"status": "grouped", "drg": "FR25"}, cost=7200, los=7, patient_share=1900)
    assert isinstance(q, Quote) and (q.case_type, q.case_type_name, q.rw) == ("normal", "正常病例", 0.8)
    assert (q.rate_fen, q.payment_standard_fen, q.payment_fen, q.fund_payment_fen, q.margin_fen) == (
        1_050_000, 840_000, 840_000, 650_000, 120_000)
    assert all(type(v) is int for v in (q.payment_fen, q.fund_payment_fen, q.margin_fen))


def test_example_2_high_outlier(quoter):
    # RW 2.5, threshold 2 x 25,000, cost 68,000: H1 add-on 1.8 RW -> 4.3 x 10,500 = 45,150; fund 36,150
    q = quoter.quote({"status": "grouped", "drg": "HH11"}, cost=68000, los=10, patient_share=9000)
    assert q.case_type == "high" and q.payment_standard_fen == 2_625_000
    assert (q.payment_fen, q.fund_payment_fen, q.margin_fen) == (4_515_000, 3_615_000, -2_285_000)


def test_example_3_low_outlier(quoter):
    # RW 0.8, threshold 0.4 x 8,000 = 3,200, cost 2,600: L1 pays the cost; fund 1,900
    q = quoter.quote({"status": "grouped", "drg": "FR25"}, cost=2600, los=7, patient_share=700)
    assert (q.case_type, q.payment_fen, q.fund_payment_fen) == ("low", 260_000, 190_000)
    assert "低倍率" in q.text() and "2,600.00 元" in q.text()


def test_ungroupable_and_unknown_drg(quoter):
    q = quoter.quote({"status": "ungroupable", "drg": "0000"}, cost=1000, los=3)
    assert (q.case_type, q.payment_fen, q.rw) == ("ungroupable", 70_000, None)  # FFS x 0.7
    q = quoter.quote({"status": "grouped", "drg": "ZZ99"}, cost=1000, los=3)
    assert q.settle_status == "no_weight" and q.payment_fen is None
    assert q.case_type_name == "未结算（权重表中没有该 DRG）"


def test_group_one_with_a_quote_equals_the_batch_settlement(grouper11):
    cases = read_cases(DATA / "chs-drg-1.1" / "sample.csv")
    n = cases.num_rows
    cost = [1000.0 + 1537.0 * i for i in range(n)]
    grouped = grouper11.group(cases.append_column("total_cost", pa.array(cost)), keep=["los", "discharge", "total_cost"])
    drgs = sorted(set(grouped["drg"].to_pylist()))
    weights = pa.table({"drg": drgs, "rw": [0.5 + 0.1 * i for i in range(len(drgs))],
                        "mean_cost": [4000.0 + 500 * i for i in range(len(drgs))],
                        "mean_los": [9.0] * len(drgs), "n": [50] * len(drgs)})
    table = pa.table({"case_id": grouped["case_id"], "hospital_id": ["H"] * n,
                      "status": pc.cast(grouped["status"], pa.string()), "drg": pc.cast(grouped["drg"], pa.string()),
                      "total_cost": cost, "patient_share": [0.0] * n,
                      "los": pc.cast(grouped["los"], pa.int64()), "discharge": pc.cast(grouped["discharge"], pa.string())})
    pack = PACK.__class__(**{**PACK.__dict__, "special_review": PACK.special_review.__class__(enabled=False)})
    batch = settle(table, pack, weights).cases.to_pylist()
    quoter = CaseQuoter(weights, pack)
    rows = cases.to_pylist()
    assert {b["case_type"] for b in batch} >= {"normal", "high"}
    for row, c, b in zip(rows, cost, batch):
        r = grouper11.group_one(row["sex"], row["age"], row["age_days"], row["birth_weight"], row["dx"], row["px"],
                                row["los"], row["discharge"], row["dept"], quote=quoter, cost=c)
        q = r.payment
        assert (r.drg, q.case_type, q.rw) == (b["drg"], b["case_type"], b["rw"])
        fen = lambda v: None if v is None else round(v * 100)  # noqa: E731
        assert (q.payment_fen, q.fund_payment_fen, q.payment_standard_fen) == (
            fen(b["payment"]), fen(b["fund_payment"]), fen(b["payment_standard"]))


def test_group_one_needs_a_cost_with_a_quote(grouper11, quoter):
    with pytest.raises(grouper.InputError, match="cost"):
        grouper11.group_one(1, 40, dx=["K22.301"], quote=quoter)
    assert grouper11.group_one(1, 40, dx=["K22.301"]).payment is None
