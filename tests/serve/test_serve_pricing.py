"""The payment object of one case (grouper.serve.pricing.case_payment), on its own: RW from the
weights, and with a pack the payment standard, case type and expected payment in fen."""

import pytest

from grouper.payment.pack import load_pack
from grouper.serve.pricing import case_payment, load_weights

from servekit import weights_file

GROUPED = {"status": "grouped", "drg": "HJ13"}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return load_weights(weights_file(tmp_path_factory.mktemp("w")))


def test_weights_only_gives_rw(weights):
    assert case_payment(GROUPED, {}, weights, None) == {"rw": 2.5, "weights": weights.source}
    assert case_payment({"status": "grouped", "drg": "ZZ99"}, {}, weights, None)["rw"] is None
    assert case_payment(GROUPED, {}, None, load_pack("illustrative-2024")) is None


def test_pack_prices_the_case(weights):
    pack = load_pack("illustrative-2024")
    p = case_payment(GROUPED, {"cost": 26000.0, "los": 10}, weights, pack)
    # 2.5 RW x 10,500 yuan/RW x k 1.0 = 26,250 yuan
    assert p["payment_standard_fen"] == p["expected_payment_fen"] == 2_625_000 and p["case_type"] == "normal"
    assert p["rate"] == 10500.0 and p["coefficient"] == 1.0 and not p["cost_assumed"] and not p["los_assumed"]
    low = case_payment(GROUPED, {"cost": 5000.0, "los": 10}, weights, pack)  # <= 0.4 x mean cost: paid at cost
    assert low["case_type"] == "low" and low["expected_payment_fen"] == 500_000 and low["cost_fen"] == 500_000
    ungroupable = case_payment({"status": "ungroupable", "drg": "0000"}, {"cost": 10000.0, "los": 5}, weights, pack)
    assert ungroupable["case_type"] == "ungroupable" and ungroupable["expected_payment_fen"] == 700_000  # FFS x 0.7
    unknown = case_payment({"status": "grouped", "drg": "ZZ99"}, {"cost": 10000.0, "los": 5}, weights, pack)
    assert unknown["settle_status"] == "no_weight" and unknown["expected_payment_fen"] is None


def test_weights_table_must_have_drg_and_rw(tmp_path):
    bad = tmp_path / "w.csv"
    bad.write_text("drg,weight\nHJ13,2.5\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a weights table \\(missing column\\(s\\) rw\\)"):
        load_weights(bad)


def test_the_service_prices_as_the_payment_layers_single_case_quote(weights):
    """One pricing for one case: the service's payment object is CaseQuoter's quote (the same
    fen), not a second settlement of its own."""
    from grouper.payment.drg import CaseQuoter

    pack = load_pack("illustrative-2024")
    quoter = CaseQuoter(weights.table, pack)
    for cost, los in ((26000.0, 10), (5000.0, 10), (90000.0, 30), (12000.0, 1)):
        p = case_payment(GROUPED, {"cost": cost, "los": los}, weights, pack)
        q = quoter.quote(GROUPED, cost=cost, los=los)
        assert (p["expected_payment_fen"], p["payment_standard_fen"], p["case_type"], p["margin_fen"]) == \
               (q.payment_fen, q.payment_standard_fen, q.case_type, q.margin_fen)
    assert weights.quoter(pack) is weights.quoter(pack)  # built once per table and pack
