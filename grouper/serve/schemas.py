"""Request and response shapes of the HTTP API (pydantic), with the examples the OpenAPI
document shows. A case has the fields of ``Grouper.group_one``; strings are length-bounded so
no request can make the service hold an unbounded value."""

from __future__ import annotations

from typing import Any, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from typing_extensions import Annotated

__all__ = ["CaseIn", "CodeHit", "ErrorOut", "GroupOut", "GroupsOut", "PaymentOut", "RulesetOut", "CASE_EXAMPLE",
           "RESULT_EXAMPLE"]

Code = Annotated[str, StringConstraints(max_length=32)]
Scalar = Union[int, float, Annotated[str, StringConstraints(max_length=64)], None]

CASE_EXAMPLE = {"case_id": "A001", "sex": 1, "age": 53, "dx": ["K76.600x006", "K07.200x012", "Q39.601", "G62.806"],
                "px": ["52.2100x001"], "los": 9, "discharge": 1, "cost": 52000.0}
RESULT_EXAMPLE = {
    "case_id": "A001", "ruleset": "chs-drg-2.0", "status": "grouped", "status_name": "分组成功",
    "mdc": "MDCH", "mdc_name": "肝、胆、胰疾病及功能障碍", "adrg": "HJ1",
    "adrg_name": "与肝、胆或胰腺疾病有关的其他手术", "drg": "HJ11",
    "drg_name": "与肝、胆或胰腺疾病有关的其他手术，伴严重合并症或并发症", "cc_level": "MCC", "flags": 0, "reasons": [],
    "payment": {"rw": 4.2, "pack": "illustrative-2024", "case_type": "normal", "case_type_name": "正常病例",
                "payment_standard_fen": 4410000, "expected_payment_fen": 4410000, "cost_assumed": False},
}


class CaseIn(BaseModel):
    """One inpatient case. ``dx``/``px``: principal first, a list or one '|'-separated text."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [CASE_EXAMPLE]})

    case_id: Scalar = Field(None, description="Your id of the case, echoed in the answer")
    sex: Scalar = Field(None, description="1 male, 2 female")
    age: Scalar = Field(None, description="Age in whole years")
    age_days: Scalar = Field(None, description="Age in days (required when age is 0)")
    birth_weight: Scalar = Field(None, description="Birth weight in grams (newborns up to 28 days)")
    dx: Union[list[Union[Code, None]], Annotated[str, StringConstraints(max_length=4096)]] = Field(
        default_factory=list, description="Diagnosis codes, principal first")
    px: Union[list[Union[Code, None]], Annotated[str, StringConstraints(max_length=4096)]] = Field(
        default_factory=list, description="Procedure codes, principal first")
    los: Scalar = Field(None, description="Length of stay in days (local schemes, payment)")
    discharge: Scalar = Field(None, description="Discharge status (离院方式)")
    dept: Scalar = Field(None, description="Department (local schemes)")
    cost: Union[float, None] = Field(None, ge=0, le=1e9, description="Total cost in yuan (payment only)")
    patient_share: Union[float, None] = Field(None, ge=0, le=1e9, description="Patient's share in yuan (payment)")
    hospital_level: Union[Annotated[str, StringConstraints(max_length=32)], None] = Field(
        None, description="Hospital level for the pack's coefficients (payment only)")
    insurance_type: Union[Annotated[str, StringConstraints(max_length=32)], None] = Field(
        None, description="Insurance type, when the pack sets values by it (payment only)")


class PaymentOut(BaseModel):
    """Weight and payment of the case (present when the service runs with --weights/--pack).
    Money in fen (integer); without ``cost`` (``los``) the case is priced at its group's mean cost
    (mean length of stay), and ``cost_assumed`` (``los_assumed``) says so."""

    rw: Union[float, None] = None
    weights: str = ""
    pack: Union[str, None] = None
    illustrative: Union[bool, None] = None
    settle_status: Union[str, None] = None
    case_type: Union[str, None] = None
    case_type_name: Union[str, None] = None
    rate: Union[float, None] = None
    coefficient: Union[float, None] = None
    payment_standard_fen: Union[int, None] = None
    expected_payment_fen: Union[int, None] = None
    fund_payment_fen: Union[int, None] = None
    margin_fen: Union[int, None] = Field(None, description="payment - cost (结余 > 0, 超支 < 0)")
    note: Union[str, None] = Field(None, description="How the case was priced (e.g. the provisional rate)")
    cost_fen: Union[int, None] = None
    cost_assumed: Union[bool, None] = None
    los: Union[float, None] = None
    los_assumed: Union[bool, None] = None


class GroupOut(BaseModel):
    """The grouping of one case; ``explain`` only with ``?explain=1``."""

    model_config = ConfigDict(json_schema_extra={"examples": [RESULT_EXAMPLE]})

    case_id: Scalar = None
    ruleset: str
    status: str = Field(description="grouped | invalid | ungroupable | ambiguous")
    status_name: str
    mdc: str
    mdc_name: str
    adrg: str
    adrg_name: str
    drg: str
    drg_name: str
    cc_level: Union[str, None] = Field(description="none | CC | MCC (null when not computed)")
    flags: int = Field(description="Data-quality flags (bit set)")
    reasons: list[dict[str, str]] = Field(
        description="Data-quality warnings and reasons: the flag's name and its message, one per flag set")
    payment: Union[PaymentOut, None] = None
    explain: Union[dict[str, Any], None] = Field(
        None, description="Decision path: steps, text, and the diagnoses that set the CC level")


class RulesetOut(BaseModel):
    name: str
    version: str
    title: str
    status: str
    default: bool
    fingerprint: str
    weights: bool = Field(description="Whether weights are configured for this ruleset")


class GroupsOut(BaseModel):
    ruleset: str
    mdcs: list[dict[str, Any]]
    adrgs: list[dict[str, Any]]
    drgs: list[dict[str, Any]]


class CodeHit(BaseModel):
    kind: str = Field(description="dx | px")
    code: str
    name: str


class ErrorOut(BaseModel):
    """Every error answer: a one-line message in the request's terms."""

    error: str
    detail: Union[list[dict[str, Any]], None] = None
