"""Labelled misconduct planted in a synthetic province, so that audit screens can be measured
against known answers (``drg synth --inject``).

Three kinds, each at chosen hospitals and a rate (share of that hospital's cases):

- ``upcode``: one MCC secondary diagnosis added to the case (虚增诊断), cost unchanged;
- ``split``: a stay of 4+ days cut in two (分解住院): the first part discharged early, the same
  patient readmitted 0-5 days later for the rest, same diagnoses and procedures; the second
  stay overwrites another case of the same hospital, so row count and volumes do not change;
- ``lowstd``: the case replaced by a low-weight medical case with a 1-2 day stay and a low cost
  (低标入院), the principal diagnosis alone;
- ``drift``: as ``upcode``, only for discharges in July-December (严重程度漂移 between halves);
- ``lift``: one and the same MCC secondary diagnosis (``LIFT_CODE_SEED`` picks it from the
  scheme's MCC codes) added to the case (升组次要诊断: one code far above the region);
- ``avoid``: every CC/MCC secondary diagnosis taken off a case that has one, as if the severe
  patient had been turned away and a simpler one admitted (推诿).

The planted rows are marked in hidden label columns ``_label_<kind>`` (``_label_split`` on the
readmission). Injection draws from its own random stream, so the columns
of a province without ``--inject`` are exactly those of before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

__all__ = ["INJECT_KINDS", "Injection", "inject_chunk", "parse_injection"]

INJECT_KINDS = {"upcode": 0.2, "split": 0.1, "lowstd": 0.1, "drift": 0.2, "lift": 0.05,
                "avoid": 0.3}  # kind -> default rate
LIFT_CODE_SEED = 0x11F7  # the one MCC code of ``lift``: the same in every chunk


@dataclass(frozen=True)
class Injection:
    kind: str
    hospitals: tuple[str, ...]
    rate: float


def parse_injection(text: str) -> Injection:
    """``KIND=H0001,H0002[@RATE]`` -> Injection; a ValueError says what is wrong."""
    kind, sep, rest = text.partition("=")
    kind = kind.strip()
    if not sep or kind not in INJECT_KINDS:
        raise ValueError(f"--inject {text!r}: use KIND=HOSPITAL,...[@RATE] with KIND one of {', '.join(INJECT_KINDS)}")
    hosp, at, rate_text = rest.partition("@")
    hospitals = tuple(h.strip() for h in hosp.split(",") if h.strip())
    try:
        rate = float(rate_text) if at else INJECT_KINDS[kind]
    except ValueError:
        rate = -1.0
    if not hospitals or not 0 < rate <= 0.5:
        raise ValueError(f"--inject {text!r}: name at least one hospital and a rate in (0, 0.5]")
    return Injection(kind, hospitals, rate)


def _hospital_index(names: list[str], inj: Injection) -> np.ndarray:
    missing = [h for h in inj.hospitals if h not in names]
    if missing:
        raise ValueError(f"--inject {inj.kind}: no hospital {', '.join(missing)} (the province has "
                         f"{names[0]}..{names[-1]})")
    return np.array([names.index(h) for h in inj.hospitals])


def _set_lists(col: pa.ListArray, rows: np.ndarray, new: list[np.ndarray]) -> pa.ListArray:
    """``col`` with the value ids of ``rows`` replaced by ``new`` (dictionary kept)."""
    off = col.offsets.to_numpy().astype(np.int64)
    ids = col.values.indices.to_numpy()[off[0]:off[-1]]
    off = off - off[0]
    lens = np.diff(off)
    lens[rows] = [len(x) for x in new]
    keep = np.ones(len(ids), bool)
    for r in rows:  # only the planted rows: a few percent of a few hospitals
        keep[off[r]:off[r + 1]] = False
    new_off = np.zeros(len(lens) + 1, np.int64)
    np.cumsum(lens, out=new_off[1:])
    flat = np.empty(new_off[-1], np.int32)
    mask = np.zeros(new_off[-1], bool)
    for r, x in zip(rows, new):
        flat[new_off[r]:new_off[r + 1]] = x
        mask[new_off[r]:new_off[r + 1]] = True
    flat[~mask] = ids[keep]
    values = pa.DictionaryArray.from_arrays(pa.array(flat), col.values.dictionary)
    return pa.ListArray.from_arrays(pa.array(new_off.astype(np.int32)), values)


def inject_chunk(batch: pa.RecordBatch, injections, cat, level_cost: np.ndarray,
                 rng: np.random.Generator) -> pa.RecordBatch:
    """The chunk with every injection planted and the three label columns added."""
    cols = {n: batch.column(n) for n in batch.schema.names}
    n = batch.num_rows
    names = cols["hospital_id"].dictionary.to_pylist()
    h = cols["hospital_id"].indices.to_numpy()
    level = cols["hospital_level"].indices.to_numpy()
    labels = {k: np.zeros(n, bool) for k in INJECT_KINDS}
    used = np.zeros(n, bool)
    dx_off = cols["dx"].offsets.to_numpy().astype(np.int64)
    dx_ids = cols["dx"].values.indices.to_numpy()[dx_off[0]:dx_off[-1]]
    dx_off = dx_off - dx_off[0]
    num = {c: cols[c].to_numpy(zero_copy_only=False).copy() for c in ("los", "total_cost", "patient_share",
                                                                      "patient_id")}
    dates = {c: cols[c].to_numpy(zero_copy_only=False).copy() for c in ("admit_date", "discharge_date")}
    discharge = np.array(cols["discharge"].to_pylist(), dtype=object)
    dx_rows, dx_new, px_rows, px_new, copy_from = [], [], [], [], np.arange(n)
    discharged = dates["discharge_date"].astype("datetime64[M]").astype(np.int64) % 12  # month - 1
    severe_ids = np.r_[cat.sdx_groups[1], cat.sdx_groups[2]]
    severe_el = np.isin(dx_ids, severe_ids) & (np.arange(len(dx_ids)) > np.repeat(dx_off[:-1], np.diff(dx_off)))
    has_severe = np.bincount(np.repeat(np.arange(n), np.diff(dx_off)), weights=severe_el, minlength=n) > 0
    for inj in sorted(injections, key=lambda i: ("split", "lowstd", "upcode", "drift", "lift", "avoid").index(i.kind)):
        at = np.isin(h, _hospital_index(names, inj))
        if inj.kind == "split":
            for hi in _hospital_index(names, inj):
                idx = np.flatnonzero((h == hi) & ~used)
                pairs = idx[: len(idx) // 2 * 2].reshape(-1, 2)
                pick = pairs[(rng.random(len(pairs)) < inj.rate) & (num["los"][pairs[:, 0]] >= 4)]
                a, b = pick[:, 0], pick[:, 1]
                los = num["los"][a]
                l1 = np.maximum(1, np.floor(los * rng.uniform(0.3, 0.6, len(a)))).astype(np.int32)
                l2 = np.maximum(1, los - l1)
                gap = rng.integers(0, 6, len(a))
                cost = num["total_cost"][a]
                share = num["patient_share"][a]
                copy_from[b] = a
                dates["discharge_date"][a] = dates["admit_date"][a] + l1.astype("timedelta64[D]")
                dates["admit_date"][b] = dates["discharge_date"][a] + gap.astype("timedelta64[D]")
                dates["discharge_date"][b] = dates["admit_date"][b] + l2.astype("timedelta64[D]")
                num["los"][a], num["los"][b] = l1, l2
                num["total_cost"][a] = np.round(cost * l1 / los, 2)
                num["total_cost"][b] = np.round(cost * l2 / los * 1.1, 2)
                num["patient_share"][a] = np.round(share * l1 / los, 2)
                num["patient_share"][b] = np.round(share * l2 / los * 1.1, 2)
                num["patient_id"][b] = num["patient_id"][a]
                discharge[b] = discharge[a]
                discharge[a] = "1"
                used[a] = used[b] = True
                labels["split"][b] = True
        elif inj.kind == "lowstd":
            pick = np.flatnonzero(at & ~used & (rng.random(n) < inj.rate))
            low = np.flatnonzero(~cat.surgical & ~np.isin(cat.letter, list("AMNOP")))
            low = low[cat.rw[low] <= np.quantile(cat.rw[low], 0.25)]
            scen = low[rng.integers(0, len(low), len(pick))]
            pdx = cat.pdx_flat[cat.pdx_off[scen] + (rng.random(len(pick)) * (cat.pdx_off[scen + 1]
                                                                          - cat.pdx_off[scen])).astype(np.int64)]
            dx_rows += list(pick)
            dx_new += [np.array([p], np.int32) for p in pdx]
            px_rows += list(pick)
            px_new += [np.zeros(0, np.int32)] * len(pick)
            num["los"][pick] = rng.integers(1, 3, len(pick))
            cost = level_cost[level[pick]] * cat.rw[scen] * 0.4 * np.exp(rng.normal(0, 0.2, len(pick)))
            num["total_cost"][pick] = np.round(cost, 2)
            num["patient_share"][pick] = np.round(cost * 0.25, 2)
            dates["discharge_date"][pick] = dates["admit_date"][pick] + num["los"][pick].astype("timedelta64[D]")
            discharge[pick] = "1"
            used[pick] = True
            labels["lowstd"][pick] = True
        elif inj.kind == "avoid":
            pick = np.flatnonzero(at & ~used & has_severe & (rng.random(n) < inj.rate))
            dx_rows += list(pick)
            dx_new += [dx_ids[dx_off[r]:dx_off[r + 1]][~severe_el[dx_off[r]:dx_off[r + 1]]].astype(np.int32)
                       for r in pick]
            used[pick] = True
            labels["avoid"][pick] = True
        else:  # upcode, drift (second half of the year only), lift (one fixed code)
            late = discharged >= 6 if inj.kind == "drift" else np.ones(n, bool)
            pick = np.flatnonzero(at & ~used & late & (rng.random(n) < inj.rate))
            mcc = cat.sdx_groups[2]
            add = mcc[rng.integers(0, len(mcc), len(pick))]
            if inj.kind == "lift":
                add = np.full(len(pick), np.random.default_rng(LIFT_CODE_SEED).choice(mcc))
            dx_rows += list(pick)
            dx_new += [np.r_[dx_ids[dx_off[r]:dx_off[r + 1]], a].astype(np.int32) for r, a in zip(pick, add)]
            used[pick] = True
            labels[inj.kind][pick] = True
    for c in ("dx", "px", "sex", "age", "age_days", "birth_weight", "dept"):
        cols[c] = cols[c].take(pa.array(copy_from))
    if dx_rows:
        cols["dx"] = _set_lists(cols["dx"], np.array(dx_rows), dx_new)
    if px_rows:
        cols["px"] = _set_lists(cols["px"], np.array(px_rows), px_new)
    for c, v in num.items():
        cols[c] = pa.array(v, cols[c].type)
    for c, v in dates.items():
        cols[c] = pa.array(v, cols[c].type)
    cols["discharge"] = pa.array(list(discharge), pa.string())
    for k, v in labels.items():
        cols[f"_label_{k}"] = pa.array(v)
    return pa.RecordBatch.from_pydict(cols)
