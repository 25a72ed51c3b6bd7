"""Audit packs are validated like payment packs: bad values and unknown keys refused by key."""

import pytest

from grouper.audit.pack import AuditPackError, load_audit_pack, parse_audit_pack


def test_bundled_default_pack():
    p = load_audit_pack()
    assert p.alpha == 0.05 and p.split_windows == (15, 30) and "Z51.1" in p.planned_dx


def test_an_empty_pack_takes_the_defaults():
    assert parse_audit_pack({}).split_min_score == load_audit_pack().split_min_score
    empty, bundled = parse_audit_pack({}), load_audit_pack()
    for key in ("drift_period", "drift_min_change", "drift_min_period_share", "lift_min_ratio", "lift_min_cases",
                "avoid_min_ratio", "dept_column"):
        assert getattr(empty, key) == getattr(bundled, key)


@pytest.mark.parametrize("doc,key", [
    ({"significance": {"alpha": 0.9}}, "significance.alpha"),
    ({"significance": {"alpha": "0.05"}}, "significance.alpha"),
    ({"significance": {"min_cases": 2.5}}, "significance.min_cases"),
    ({"significance": {"min_ratio": 0.5}}, "significance.min_ratio"),
    ({"cost_shift": {"min_mean_excess": 2}}, "cost_shift.min_mean_excess"),
    ({"split": {"windows": [30, 15]}}, "split.windows"),
    ({"split": {"windowz": [15]}}, "split.windowz"),
    ({"split": {"planned_dx": "Z51"}}, "split.planned_dx"),
    ({"low_standard": {"max_los": True}}, "low_standard.max_los"),
    ({"bogus": {}}, "bogus"),
    ({"long_stay": {"los_ratio": 0.5}}, "long_stay.los_ratio"),
    ({"drift": {"period": "week"}}, "drift.period"),
    ({"drift": {"perod": "year"}}, "drift.perod"),
    ({"drift": {"min_change": -0.1}}, "drift.min_change"),
    ({"drift": {"min_period_share": 2}}, "drift.min_period_share"),
    ({"lifting_dx": {"min_ratio": 0.5}}, "lifting_dx.min_ratio"),
    ({"lifting_dx": {"min_cases": 2.5}}, "lifting_dx.min_cases"),
    ({"avoidance": {"min_ratio": "1.2"}}, "avoidance.min_ratio"),
    ({"avoidance": {"alpha": 0.01}}, "avoidance.alpha"),
    ({"department": {"column": ""}}, "department.column"),
    ({"department": {"columns": "dept"}}, "department.columns"),
])
def test_bad_packs_are_refused_naming_the_key(doc, key):
    with pytest.raises(AuditPackError, match=key.replace(".", r"\.")):
        parse_audit_pack(doc, "a.toml")


def test_missing_pack_and_bad_toml(tmp_path):
    with pytest.raises(AuditPackError, match="no such file"):
        load_audit_pack(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[split\n", encoding="utf-8")
    with pytest.raises(AuditPackError, match="not valid TOML"):
        load_audit_pack(bad)
