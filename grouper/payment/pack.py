"""Payment packs: the payment rules of one region and year, as a validated TOML file.

A pack is read once, checked key by key (``pack_checks``) and becomes the frozen dataclasses of
``pack_model`` that ``grouper.payment.drg`` evaluates; a bad pack is refused with ``PackError``
naming the file and the dotted key. This module is the place to read packs from; it also
re-exports the model. ``[dip]`` is read raw for ``grouper.payment.dip`` (``load_dip_table``).
"""

from __future__ import annotations

import os
from pathlib import Path

import tomllib

from grouper.payment import pack_checks as checks
from grouper.payment.pack_model import (MAX_AMOUNT, MAX_FACTOR, MAX_RATE, MIN_MEAN_COST, Coefficients, Fund, Knobs, Outlier, PackError,
                                       PaymentPack, PerDiem, QualityKnob, QualityRule, Rate, ReferralKnob, Settlement, SharingKnob,
                                       ShortStay, SpecialReview, Unusual, UnusualRule)

__all__ = ["MAX_AMOUNT", "MAX_FACTOR", "MAX_RATE", "MIN_MEAN_COST", "Coefficients", "Fund", "Knobs", "Outlier",
           "PackError", "PaymentPack", "PerDiem", "QualityKnob", "QualityRule", "Rate", "ReferralKnob",
           "Settlement", "SharingKnob", "ShortStay", "SpecialReview", "Unusual", "UnusualRule", "load_dip_table",
           "available_packs", "load_pack", "parse_pack"]


def parse_pack(data: dict, file: str = "<pack>") -> PaymentPack:
    """A pack from parsed TOML (a dict); raises PackError naming ``file`` and the key."""
    top = checks.Table(file, "", data)
    p = top.sub("pack", required=True)
    name = p.text("name", required=True)
    head = dict(region=p.text("region", required=True), year=p.number("year", required=True, integer=True,
                                                                        lo=1900, hi=2200),
                illustrative=p.flag("illustrative"), description=p.text("description", ""),
                basis=p.text("basis", "total_cost", choices=("total_cost", "fund")))
    p.done()
    k = top.sub("knobs")
    knobs = Knobs(checks.quality(k.sub("quality")), checks.referral(k.sub("referral")),
                  checks.sharing(k.sub("sharing")))
    k.done()
    dip = top.raw("dip", {})
    if not isinstance(dip, dict):
        top.fail("dip", f"must be a table, not {checks.kind(dip)}")
    pack = PaymentPack(
        name=name, **head, rate=checks.rate(top.sub("rate", required=True)),
        coefficients=checks.coefficients(top.sub("hospital_coefficients")),
        outlier=checks.outlier(top.sub("outlier")), unusual=checks.unusual(top.sub("unusual")),
        short_stay=checks.short_stay(top.sub("short_stay")), per_diem=checks.per_diem(top.sub("per_diem")),
        special_review=checks.special_review(top.sub("special_review")),
        settlement=checks.settlement(top.sub("settlement")), fund=checks.fund(top.sub("fund")), knobs=knobs, dip=dip,
        path=file)
    if pack.basis == "fund" and pack.fund.patient_share == "ratio" and (
            pack.fund.fund_ratio == 0 or 0 in pack.fund.fund_ratio_by_insurance_type.values()):
        top.fail("fund.fund_ratio", "must be above 0 on a fund basis (the payment is the fund amount / ratio)")
    top.done()
    return pack


def _payment_dirs() -> list[Path]:
    from grouper.rulesets import rules_dirs

    return [d / "payment" for d in rules_dirs() if (d / "payment").is_dir()]


def available_packs() -> dict[str, Path]:
    """Bundled (and $DRG_RULES_PATH) packs by name: ``<rules dir>/payment/<name>.toml``."""
    found: dict[str, Path] = {}
    for d in _payment_dirs():
        for f in sorted(d.glob("*.toml")):
            found.setdefault(f.stem, f)
    return found


def load_dip_table(name_or_path: str | os.PathLike | None) -> dict:
    """The [dip] table of a pack file or bundled pack, as read ({} for None); ``DipParams``
    checks its values. A missing or unreadable pack, or one without [dip], is a ValueError."""
    if name_or_path is None:
        return {}
    path = Path(name_or_path)
    if not path.is_file():
        found = available_packs().get(str(name_or_path))
        if found is None:
            raise ValueError(f"{name_or_path}: no such pack file and no bundled pack of that name")
        path = found
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: unreadable pack ({exc})") from None
    if not isinstance(doc.get("dip"), dict):
        raise ValueError(f"{path}: no [dip] table")
    return doc["dip"]


def load_pack(name_or_path: str | os.PathLike) -> PaymentPack:
    """Read and validate a pack file (a path, or the name of a bundled pack)."""
    p = Path(name_or_path)
    if not p.is_file():
        found = available_packs().get(str(name_or_path))
        if found is None:
            raise PackError(str(name_or_path), "", "no such file and no bundled pack of that name "
                            f"(bundled: {', '.join(available_packs()) or 'none'})")
        p = found
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise PackError(str(p), "", f"not valid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PackError(str(p), "", f"unreadable ({exc})") from None
    return parse_pack(data, str(p))
