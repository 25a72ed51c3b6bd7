"""A synthetic province: realistic-looking discharge records for trying the grouper at scale.

Everything is drawn with NumPy, vectorised, one chunk of a million cases at a time, so ten
million cases take seconds and memory stays bounded. The data are SYNTHETIC: no real patient
is behind any row, and the Parquet metadata says so (``drg.synthetic = true``).

How a case is drawn: a hospital (level 一级/二级/三级, volume and case mix by level); a clinical
scenario, one per ADRG rule of the scheme, with skewed popularity (common medical groups
dominate, surgery about a third, transplants and burns rare); the principal diagnosis from the
ADRG's list (or its MDC's), the principal procedure from the ADRG's procedure list for surgical
scenarios; 0 to 20+ secondary diagnoses (mean about 4.5) drawn from a pool where CC and MCC codes
appear at plausible rates; age and sex consistent with the MDC (newborns with age in days and
birth weight); a latent relative weight per scenario from which length of stay and total cost are
drawn with log-normal noise and a few high/low-cost outliers; deaths at scenario- and age-dependent
rates; dates within the year; patient ids that repeat for readmissions; for settlement, the
insurance type (职工/居民), the patient's share of the bill and referrals from primary care.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from grouper._util.lazy import pc
from grouper._util.version import __version__
from grouper.rulesets import DEFAULT_RULESET, Ruleset, load_ruleset

__all__ = ["SynthSpec", "generate", "write_synthetic"]

CHUNK = 1_000_000
LEVELS = np.array(["一级", "二级", "三级"])
LEVEL_SHARE = np.array([0.35, 0.45, 0.20])  # of hospitals
LEVEL_VOLUME = np.array([1.0, 4.0, 15.0])  # relative cases per hospital
LEVEL_SURGICAL = np.array([0.18, 0.30, 0.40])  # share of surgical scenarios
LEVEL_BASE_COST = np.array([5200.0, 7800.0, 11500.0])  # yuan per unit of weight
INSURANCE_TYPES = np.array(["职工", "居民"])  # 职工医保 (employees), 城乡居民医保 (residents)
INSURANCE_EMPLOYEE = np.array([0.30, 0.40, 0.55])  # share of employees among the cases, by level
REFERRED_RATE = 0.015  # referred up from primary care, per unit of latent weight (capped at 3)
RARE_MDC = {"MDCA": 0.02, "MDCP": 0.3, "MDCY": 0.05, "MDCZ": 0.2, "MDCW": 0.2}
COMMON_SECONDARY = ["I10.x00x002", "I10.x05", "E11.900", "I25.103", "E78.500", "K76.000", "J18.900",
                    "N18.900", "I48.x01", "E87.600", "D64.900", "J44.900", "I63.900", "K29.700"]


@dataclass(frozen=True)
class SynthSpec:
    cases: int
    hospitals: int = 50
    year: int = 2025
    seed: int = 0
    ruleset: str = DEFAULT_RULESET
    #: labelled misconduct to plant (``synth_inject.Injection``); none: the province of before
    inject: tuple = ()


class _Catalogue:
    """Per-scenario code pools and parameters derived once from the scheme's tables."""

    def __init__(self, rs: Ruleset, rng: np.random.Generator):
        self.dx_codes = rs.dx_universe
        self.px_codes = rs.px_universe
        dx_id = {c: i for i, c in enumerate(self.dx_codes)}
        px_id = {c: i for i, c in enumerate(self.px_codes)}
        pdx_pools, ppx_pools, mdc_letter, surgical, weight = [], [], [], [], []
        for m in rs.mdcs:
            mdc_list = rs.lists.get((m.code, "mdc_dx"))
            for a_code in m.adrgs:
                a = rs.adrgs[a_code]
                dx_list = rs.lists.get((a.code, "dx")) or _own_entry_list(rs, a, "pdx_in")
                px_list = rs.lists.get((a.code, "px")) or _own_entry_list(rs, a, "ppx_in")
                pool = dx_list.codes if dx_list else (mdc_list.codes if mdc_list else ())
                if not pool:
                    continue
                pdx_pools.append(np.array([dx_id[c] for c in pool], np.int32))
                ppx_pools.append(np.array([px_id[c] for c in px_list.codes], np.int32) if px_list else np.zeros(0, np.int32))
                mdc_letter.append(m.code[3])
                surgical.append(px_list is not None and a.section != "medical")
                weight.append(RARE_MDC.get(m.code, 1.0))
        n = len(pdx_pools)
        self.letter = np.array(mdc_letter)
        self.surgical = np.array(surgical)
        # popularity: Zipf-like by a random rank within each section, rare MDCs damped
        pop = np.empty(n)
        for sec in (True, False):
            idx = np.flatnonzero(self.surgical == sec)
            ranks = rng.permutation(len(idx)) + 1
            pop[idx] = 1.0 / ranks ** 0.9
        self.popularity = pop * np.array(weight)
        # latent relative weight: surgery heavier, MDCA (transplants, ECMO) far heavier
        self.rw = np.exp(rng.normal(np.where(self.surgical, np.log(1.8), np.log(0.75)), 0.45))
        self.rw[self.letter == "A"] *= 12
        self.death = np.clip(rng.gamma(1.2, 0.004, n) * (1 + self.rw), 0, 0.25)
        self.pdx_off, self.pdx_flat = _flatten(pdx_pools)
        self.ppx_off, self.ppx_flat = _flatten(ppx_pools)
        # secondary diagnoses: common chronic codes, CC and MCC codes, and a long tail
        mcc = [dx_id[c] for c, (lv, _) in rs.cc.items() if "MCC" in lv]
        cc = [dx_id[c] for c, (lv, _) in rs.cc.items() if lv == "CC"]
        severe = set(mcc) | set(cc)
        common = [dx_id[c] for c in COMMON_SECONDARY if c in dx_id and dx_id[c] not in severe]
        plain = np.array([i for i in range(len(self.dx_codes)) if i not in severe], np.int32)
        tail = rng.choice(plain, size=min(3000, len(plain)), replace=False)
        self.sdx_groups = [np.array(g, np.int32) for g in (common or tail[:10], cc or tail, mcc or tail, tail)]
        # per secondary diagnosis: about 28 % of cases end up with a CC and 11 % with an MCC
        self.sdx_group_p = np.array([0.40, 0.07, 0.025, 0.505])
        valid_or = set(rs.lists[("", "VALID_OR")].codes) if ("", "VALID_OR") in rs.lists else set()
        non_or = [px_id[c] for c in self.px_codes if c not in valid_or]
        self.non_or = np.array(non_or or list(range(len(self.px_codes))), np.int32)


def _own_entry_list(rs: Ruleset, adrg, pred: str):
    """The first list of the ADRG's own that its entry rule tests with ``pred``, for schemes
    that name lists by set id (3.0: ``DI_BB2``, ``OP1_AC1``) instead of dx / px."""
    from grouper.rulesets.conditions import predicates

    for p in predicates(adrg.entry_rule):
        if p["pred"] == pred:
            lst = rs.resolve_list(p["list"], adrg.code)
            if lst.owner == adrg.code and lst.codes:
                return lst
    return None


def _flatten(pools: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    off = np.zeros(len(pools) + 1, np.int64)
    np.cumsum([len(p) for p in pools], out=off[1:])
    return off, np.concatenate(pools) if pools else np.zeros(0, np.int32)


def _pick(rng, off: np.ndarray, flat: np.ndarray, which: np.ndarray) -> np.ndarray:
    """One random element of pool ``which[i]`` for every i (pools must be non-empty)."""
    lens = off[which + 1] - off[which]
    return flat[off[which] + (rng.random(len(which)) * lens).astype(np.int64)]


def _skewed(rng, size: int, n: int, power: float = 3.0) -> np.ndarray:
    """Skewed picks in [0, n): the first codes of a pool are much more common than the rest."""
    return np.minimum((n * rng.random(size) ** power).astype(np.int64), max(n - 1, 0))


def _lists(rng, first: np.ndarray, has_first: np.ndarray, counts: np.ndarray, draw) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, flat) of lists [first (if present), draw(counts) ...] per case."""
    lens = has_first.astype(np.int64) + counts
    off = np.zeros(len(lens) + 1, np.int64)
    np.cumsum(lens, out=off[1:])
    flat = np.empty(off[-1], np.int32)
    is_first = np.zeros(off[-1], bool)
    is_first[off[:-1][has_first]] = True
    flat[is_first] = first[has_first]
    flat[~is_first] = draw(int(counts.sum()))
    return off.astype(np.int32), flat


def _chunk(spec: SynthSpec, cat: _Catalogue, hosp: dict, start: int, n: int, rng: np.random.Generator) -> pa.RecordBatch:
    h = rng.choice(len(hosp["id"]), size=n, p=hosp["p"])
    level = hosp["level"][h]
    # scenario by hospital level: surgical share and case mix differ
    scen = np.empty(n, np.int64)
    for lv in range(3):
        idx = np.flatnonzero(level == lv)
        w = cat.popularity * np.where(cat.surgical, LEVEL_SURGICAL[lv] / cat.popularity[cat.surgical].sum(),
                                      (1 - LEVEL_SURGICAL[lv]) / cat.popularity[~cat.surgical].sum())
        w = w * cat.rw ** ((lv - 1) * 0.5)  # higher levels see heavier cases
        scen[idx] = rng.choice(len(w), size=len(idx), p=w / w.sum())
    letter = cat.letter[scen]
    surgical = cat.surgical[scen]

    # demographics consistent with the MDC
    sex = rng.integers(1, 3, n).astype(np.int8)
    sex[letter == "M"] = 1
    sex[(letter == "N") | (letter == "O")] = 2
    adult = np.clip(rng.triangular(15, 68, 98, n), 15, 100)
    age = np.where(rng.random(n) < 0.09, rng.integers(1, 15, n), adult).astype(np.int16)
    age[letter == "O"] = rng.integers(18, 46, int((letter == "O").sum()))
    newborn = letter == "P"
    age[newborn] = 0
    age_days = np.full(n, -1, np.int32)
    age_days[newborn] = np.where(rng.random(int(newborn.sum())) < 0.85, rng.geometric(0.25, int(newborn.sum())) - 1,
                                 rng.integers(29, 365, int(newborn.sum())))
    weight = np.full(n, -1, np.int32)
    nb = newborn & (age_days <= 28)
    k = int(nb.sum())
    weight[nb] = np.clip(np.where(rng.random(k) < 0.1, rng.normal(1700, 450, k), rng.normal(3250, 480, k)), 500, 5200).astype(np.int32)

    # codes
    pdx = _pick(rng, cat.pdx_off, cat.pdx_flat, scen)
    n_sdx = np.minimum(rng.negative_binomial(3, 3 / 7.5, n), 30)
    groups = cat.sdx_groups

    def draw_sdx(total: int) -> np.ndarray:
        g = rng.choice(4, size=total, p=cat.sdx_group_p)
        out = np.empty(total, np.int32)
        for i, pool in enumerate(groups):
            sel = np.flatnonzero(g == i)
            out[sel] = pool[_skewed(rng, len(sel), len(pool), 1.5 if i == 0 else 3.0)] if i in (0, 3) else pool[rng.integers(0, len(pool), len(sel))]
        return out

    dx_off, dx_flat = _lists(rng, pdx, np.ones(n, bool), n_sdx, draw_sdx)
    has_ppx = surgical & (cat.ppx_off[scen + 1] > cat.ppx_off[scen])
    ppx = np.zeros(n, np.int32)
    ppx[has_ppx] = _pick(rng, cat.ppx_off, cat.ppx_flat, scen[has_ppx])
    n_spx = np.where(has_ppx, rng.poisson(0.8, n), np.where(rng.random(n) < 0.3, rng.integers(1, 3, n), 0))
    px_off, px_flat = _lists(rng, ppx, has_ppx, n_spx, lambda t: cat.non_or[_skewed(rng, t, len(cat.non_or))])

    # severity, length of stay, cost, outcome
    sev = 1.0 + 0.012 * n_sdx
    rw = cat.rw[scen] * sev
    los = np.clip(np.round(np.exp(rng.normal(np.log(3.0 + 4.5 * rw ** 0.6), 0.5))), 1, 365).astype(np.int32)
    cost = LEVEL_BASE_COST[level] * rw * np.exp(rng.normal(0, 0.32, n))
    u = rng.random(n)
    cost = np.where(u < 0.03, cost * rng.uniform(2.5, 5, n), np.where(u > 0.98, cost * rng.uniform(0.15, 0.4, n), cost))
    death = rng.random(n) < cat.death[scen] * np.where(age >= 75, 2.5, 1.0)
    discharge = rng.choice(np.array(["1", "2", "3", "4", "9"]), size=n, p=[0.915, 0.035, 0.025, 0.015, 0.01])
    discharge[death] = "5"
    end = rng.integers(0, 365, n)
    year0 = np.datetime64(f"{spec.year}-01-01")
    discharge_date = year0 + np.maximum(end, los).astype("timedelta64[D]")
    admit_date = discharge_date - los.astype("timedelta64[D]")
    patients = max(1, int((start + n) / 1.15))
    patient = rng.integers(0, patients, n)
    # for settlement (drawn last, so the columns above do not change): insurance type, employees
    # (职工) more common at higher levels; the patient's FFS share of the bill, lower for employees;
    # complex cases referred up from primary care to 二级/三级 hospitals
    total_cost = np.round(cost, 2)
    employee = rng.random(n) < INSURANCE_EMPLOYEE[level]
    share = np.round(total_cost * np.where(employee, rng.uniform(0.15, 0.25, n), rng.uniform(0.25, 0.35, n)), 2)
    referred = (level > 0) & (rng.random(n) < REFERRED_RATE * np.minimum(rw, 3.0))

    dx_dict, px_dict = hosp["dx_dict"], hosp["px_dict"]
    cols = {
        "case_id": pa.array(np.arange(start + 1, start + n + 1, dtype=np.int64)),
        "hospital_id": pa.DictionaryArray.from_arrays(pa.array(h.astype(np.int32)), hosp["id_arr"]),
        "hospital_level": pa.DictionaryArray.from_arrays(pa.array(level.astype(np.int32)), pa.array(LEVELS)),
        "patient_id": pa.array(patient.astype(np.int64)),
        "sex": pa.array(sex),
        "age": pa.array(age),
        "age_days": pa.array(age_days, mask=age_days < 0),
        "birth_weight": pa.array(weight, mask=weight < 0),
        "dept": pa.array(np.char.add(letter.astype("U1"), np.where(surgical, "02", "01"))),
        "admit_date": pa.array(admit_date),
        "discharge_date": pa.array(discharge_date),
        "los": pa.array(los),
        "discharge": pa.array(discharge),
        "total_cost": pa.array(total_cost),
        "dx": pa.ListArray.from_arrays(pa.array(dx_off), pa.DictionaryArray.from_arrays(pa.array(dx_flat), dx_dict)),
        "px": pa.ListArray.from_arrays(pa.array(px_off), pa.DictionaryArray.from_arrays(pa.array(px_flat), px_dict)),
        "insurance_type": pa.DictionaryArray.from_arrays(pa.array(np.where(employee, 0, 1).astype(np.int32)),
                                                         pa.array(INSURANCE_TYPES)),
        "patient_share": pa.array(share),
        "referred_from_primary": pa.array(referred),
    }
    return pa.RecordBatch.from_pydict(cols)


def generate(spec: SynthSpec):
    """Yield record batches (a million rows each) of the synthetic province; same spec, same data."""
    if spec.cases < 0 or spec.hospitals < 1:
        raise ValueError("cases must be >= 0 and hospitals >= 1")
    rs = load_ruleset(spec.ruleset)
    seeds = np.random.SeedSequence([spec.seed, spec.year, spec.hospitals])
    cat_seed, hosp_seed, *chunk_seeds = seeds.spawn(2 + max(1, -(-spec.cases // CHUNK)))
    cat = _Catalogue(rs, np.random.default_rng(cat_seed))
    hrng = np.random.default_rng(hosp_seed)
    level = hrng.choice(3, size=spec.hospitals, p=LEVEL_SHARE)
    volume = LEVEL_VOLUME[level] * hrng.lognormal(0, 0.4, spec.hospitals)
    hosp = {"id": np.arange(spec.hospitals), "level": level, "p": volume / volume.sum(),
            "id_arr": pa.array([f"H{i + 1:04d}" for i in range(spec.hospitals)]),
            "dx_dict": pa.array(cat.dx_codes), "px_dict": pa.array(cat.px_codes)}
    for i, start in enumerate(range(0, spec.cases, CHUNK)):
        b = _chunk(spec, cat, hosp, start, min(CHUNK, spec.cases - start), np.random.default_rng(chunk_seeds[i]))
        if spec.inject:  # its own random stream: the columns without injection stay as they were
            from grouper.analytics.synth_inject import inject_chunk

            b = inject_chunk(b, spec.inject, cat, LEVEL_BASE_COST, np.random.default_rng([spec.seed, i, 0x1AB]))
        yield b


def metadata(spec: SynthSpec) -> dict[bytes, bytes]:
    rs = load_ruleset(spec.ruleset)
    return {
        b"drg.synthetic": b"true",
        b"drg.description": "SYNTHETIC discharge records generated by drg-grouper; no real patients.".encode(),
        b"drg.synth_spec": (f"cases={spec.cases} hospitals={spec.hospitals} year={spec.year} "
                            f"seed={spec.seed} ruleset={spec.ruleset}"
                            + "".join(f" inject={i.kind}={','.join(i.hospitals)}@{i.rate}" for i in spec.inject)).encode(),
        b"drg.ruleset_fingerprint": rs.fingerprint.encode(),
        b"drg.grouper_version": __version__.encode(),
    }


def write_synthetic(spec: SynthSpec, path: str | os.PathLike, *, overwrite: bool = False, bom: bool = False,
                    progress=None) -> int:
    """Write the province to Parquet (code columns dictionary-encoded, 1M-row groups) or CSV
    (dx/px '|'-joined; ``bom``: with a UTF-8 byte order mark); atomically, like every output, with
    a ``progress`` line (a stream, or None: silent). Returns the number of rows."""
    from grouper._util.progress import Progress
    from grouper.io import table_kind, write_batches

    kind = table_kind(path)
    meta = metadata(spec)

    def batches():
        for b in generate(spec):
            if kind == "csv":
                cols = {name: b.column(name) for name in b.schema.names}
                for c in ("dx", "px", "hospital_id", "hospital_level", "insurance_type"):
                    arr = cols[c]
                    if pa.types.is_list(arr.type):
                        arr = pc.binary_join(pa.ListArray.from_arrays(arr.offsets, arr.values.cast(pa.string())), "|")
                    else:
                        arr = arr.cast(pa.string())
                    cols[c] = arr
                b = pa.RecordBatch.from_pydict(cols)
            yield b.replace_schema_metadata(meta)
            if bar is not None:
                bar.advance(b.num_rows)

    bar = None if progress is None else Progress(progress, spec.cases)
    try:
        return write_batches(path, batches(), overwrite=overwrite, bom=bom, rows=spec.cases)
    finally:
        if bar is not None:
            bar.close()
