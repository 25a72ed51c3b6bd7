"""Regrouping a province from one scheme version to another, in one streaming pass.

Every case is grouped under both rulesets (codes mapped once: the second scheme gets the first's
ids through a lookup table), and the run writes per case both results, a migration matrix
(from x to counts at status, MDC, ADRG and DRG level) and a summary: shares of cases whose
group changes, status-class rates under each version, the principal diagnoses behind cases that
become ambiguous or ungroupable, groups that appear or vanish, and, when a cost column is
present, relative weights under each version (by the weights layer: trimmed, renormalised) and each
hospital's CMI under each. All counting
is vectorised per batch (indices of the dictionary-encoded outputs), never per row in Python.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa

from grouper._util.lazy import pc
from grouper.analytics.weights import WeightOptions
from grouper.engine import Encoder, Grouper, kept_names
from grouper.io import CANONICAL_COLUMNS, CaseSource
from grouper.rulesets.convert import CodeConverter

__all__ = ["Regrouping", "RegroupResult"]

LEVELS = ("status", "mdc", "adrg", "drg")
RESULT_COLUMNS = ("status", "mdc", "adrg", "drg", "cc_level")
#: the output's own columns; a kept input column with one of these names comes as input_<name>
OUTPUT_COLUMNS = ("case_id", *(f"{side}_{c}" for side in ("from", "to") for c in RESULT_COLUMNS))
#: what a DRG split reads, in Chinese, for people (reports)
SPLIT_READS_ZH = {"age": "年龄", "birth weight": "出生体重", "CC/MCC": "并发症或合并症 CC/MCC"}
NOT_GROUPED = ("invalid", "ungroupable", "ambiguous")


@dataclass
class _Side:
    """Accumulators of one scheme's results (indices into its output dictionaries)."""

    g: Grouper
    values: dict = field(default_factory=dict)  # level -> dictionary values (pa.Array)
    drg_idx: list = field(default_factory=list)  # per batch: DRG dictionary index of grouped cases
    costs: list = field(default_factory=list)  # per batch: their costs
    not_grouped: dict = field(default_factory=dict)  # (status, MDC) -> cases, for statuses in NOT_GROUPED


@dataclass
class RegroupResult:
    rows: int
    seconds: float
    summary: dict
    matrix: pa.Table


class Regrouping:
    """One regrouping run over opened case ``sources`` (``CaseSource``): ``batches()`` yields the
    per-case output (both results side by side) while counting; ``result()`` then gives the
    migration matrix and the summary. Reading and writing files is the job's (``grouper.jobs.regroup``).
    ``convert_codes`` first rewrites codes through the target ruleset's mapping tables."""

    def __init__(self, sources: list[CaseSource], g_from: Grouper, g_to: Grouper, *, n_threads: int | None = None,
                 keep: Iterable[str] = (), cost_column: str = "total_cost", hospital_column: str = "hospital_id",
                 top: int = 20, convert_codes: bool = False, weight_options=None):
        keep = list(keep)
        for s in sources:
            with s.named_errors():
                self.kept = kept_names(keep, OUTPUT_COLUMNS, OUTPUT_COLUMNS)  # input column -> output name
            for g in (g_from, g_to):
                s.check([*g.encoder.required, *keep])
        self.sources, self.g_from, self.g_to, self.n_threads = sources, g_from, g_to, n_threads
        self.cost_column, self.hospital_column, self.top, self.weight_options = (cost_column, hospital_column, top,
                                                                                  weight_options)
        # one encoder over both code dictionaries: strings are mapped once, each scheme gets its ids
        # by a table lookup (a code known to only one scheme stays known to that one)
        self.shared = Encoder(sorted(set(g_from.encoder.dx.codes) | set(g_to.encoder.dx.codes)),
                              sorted(set(g_from.encoder.px.codes) | set(g_to.encoder.px.codes)))
        self.converter = None
        if convert_codes:
            self.converter = CodeConverter(g_to.ruleset.dx_map, g_to.ruleset.px_map)
        self.sides = {"from": _Side(g_from), "to": _Side(g_to)}
        self.pair_counts: dict[str, np.ndarray] = {}
        self.pdx_moves: dict[str, dict[str, int]] = {s: {} for s in NOT_GROUPED}
        self.unknown = {"principal_dx_unknown": 0}  # to either scheme: a sign of codes from another edition
        self.hospital_drg: dict[str, dict[str, np.ndarray]] = {}  # side -> hospital -> counts per drg index
        self.has_cost = all(cost_column in s.schema.names for s in sources)
        self.has_hosp = all(hospital_column in s.schema.names for s in sources)
        self.columns = {*CANONICAL_COLUMNS, *keep, cost_column, hospital_column}
        self.start = time.perf_counter()
        self.done = 0

    def batches(self) -> Iterator[pa.RecordBatch]:
        g_from, g_to, sides, shared = self.g_from, self.g_to, self.sides, self.shared
        for s in self.sources:
            for b in s.read(self.columns):  # the next batch is read while this one is grouped
                if self.converter is not None:
                    b = self.converter.convert(b)
                enc = shared.encode(b)
                enc_from = g_from.encoder.translate(enc, shared, b)
                enc_to = g_to.encoder.translate(enc, shared, b)
                lean = dict(n_threads=self.n_threads, row_offset=self.done, columns=("case_id", *RESULT_COLUMNS))
                results = {"from": g_from.group_batch(b, encoded=enc_from, **lean),
                           "to": g_to.group_batch(b, encoded=enc_to, **lean)}
                _count(results, sides, self.pair_counts)
                _count_status_mdc(results, sides)
                self.unknown["principal_dx_unknown"] += _count_pdx(results, enc, shared.dx.codes, self.pdx_moves)
                if self.has_cost:
                    _count_cost(results, sides, b.column(self.cost_column))
                if self.has_hosp:
                    _count_hospitals(results, sides, b.column(self.hospital_column), self.hospital_drg)
                cols = {"case_id": results["from"].column("case_id")}
                for side in ("from", "to"):
                    for c in RESULT_COLUMNS:
                        cols[f"{side}_{c}"] = results[side].column(c)
                for c, name in self.kept.items():
                    cols[name] = b.column(c)
                self.done += b.num_rows
                yield pa.RecordBatch.from_pydict(cols).replace_schema_metadata(_metadata(g_from, g_to))

    def result(self) -> RegroupResult:
        """The migration matrix and the summary, once ``batches()`` is exhausted."""
        done, sides, top = self.done, self.sides, self.top
        seconds = time.perf_counter() - self.start
        mat = _matrix(sides, self.pair_counts)
        summ = _summary(done, seconds, sides, self.pair_counts, mat, self.pdx_moves, self.hospital_drg, self.has_cost,
                        top, self.weight_options or WeightOptions())
        summ.update(_version_changes(sides, _drg_level(mat), done, top))
        summ["principal_dx_unknown"] = self.unknown["principal_dx_unknown"]
        summ["principal_dx_unknown_share"] = self.unknown["principal_dx_unknown"] / done if done else 0.0
        if self.converter is not None:
            summ["unmapped_codes"] = self.converter.report(top)
        return RegroupResult(done, seconds, summ, mat)


def _metadata(g_from: Grouper, g_to: Grouper) -> dict[bytes, bytes]:
    c1, c2 = g_from.compiled, g_to.compiled
    return {b"drg.regroup_from": f"{c1.name} {c1.version} {c1.fingerprint}".encode(),
            b"drg.regroup_to": f"{c2.name} {c2.version} {c2.fingerprint}".encode(),
            b"drg.grouper_version": g_from.metadata[b"drg.grouper_version"]}


def _indices(col: pa.Array) -> np.ndarray:
    return col.indices.to_numpy(zero_copy_only=False).astype(np.int64)


def _is(result: pa.RecordBatch, label: str) -> np.ndarray:
    col = result.column("status")
    labels = col.dictionary.to_pylist()
    idx = labels.index(label) if label in labels else -1
    return col.indices.to_numpy(zero_copy_only=False) == idx


def _count(results: dict, sides: dict, pair_counts: dict) -> None:
    """Per level, counts of (from index, to index) pairs: one bincount per batch."""
    for level in LEVELS:
        a, b = results["from"].column(level), results["to"].column(level)
        for side, col in (("from", a), ("to", b)):
            sides[side].values.setdefault(level, col.dictionary)
        n_to = len(b.dictionary)
        key = _indices(a) * n_to + _indices(b)
        counts = np.bincount(key, minlength=len(a.dictionary) * n_to)
        pair_counts[level] = pair_counts.get(level, 0) + counts


def _count_status_mdc(results: dict, sides: dict) -> None:
    """Cases not grouped, by (status, MDC) on each side: a fail inside an MDC (3.0's X000) keeps
    its MDC, a case no MDC took has 0000, and ambiguous (QY) cases are counted per MDC."""
    for side, r in results.items():
        st, mdc = r.column("status"), r.column("mdc")
        n_mdc = len(mdc.dictionary)
        counts = np.bincount(_indices(st) * n_mdc + _indices(mdc), minlength=len(st.dictionary) * n_mdc)
        labels, mdcs = st.dictionary.to_pylist(), mdc.dictionary.to_pylist()
        for k in np.flatnonzero(counts):
            label = labels[k // n_mdc]
            if label in NOT_GROUPED:
                key = (label, mdcs[k % n_mdc])
                acc = sides[side].not_grouped
                acc[key] = acc.get(key, 0) + int(counts[k])


def _count_pdx(results: dict, enc, codes: list[str], moves: dict) -> int:
    """Principal diagnoses of cases grouped before and not grouped (by status) after; returns
    how many principal diagnoses neither scheme knows (``enc`` is in the shared code ids)."""
    was_grouped = _is(results["from"], "grouped")
    first = enc.dx_off[:-1]
    has_dx = enc.dx_off[1:] > first
    pdx = np.full(enc.n, -2, np.int64)
    pdx[has_dx] = enc.dx_ids[first[has_dx]]
    for status in NOT_GROUPED:
        sel = was_grouped & _is(results["to"], status) & (pdx >= 0)
        if sel.any():
            ids, n = np.unique(pdx[sel], return_counts=True)
            for i, k in zip(ids, n):
                moves[status][codes[i]] = moves[status].get(codes[i], 0) + int(k)
    return int((pdx == -1).sum())


def _count_cost(results: dict, sides: dict, cost_col) -> None:
    """Keep each side's grouped cases' DRG index and cost (12 bytes a case) for the weights."""
    cost = pc.cast(cost_col, pa.float64()).to_numpy(zero_copy_only=False)
    for side in ("from", "to"):
        r = results[side]
        grouped = _is(r, "grouped") & ~np.isnan(cost)
        sides[side].drg_idx.append(_indices(r.column("drg"))[grouped].astype(np.int32))
        sides[side].costs.append(cost[grouped])


def _count_hospitals(results: dict, sides: dict, hosp_col, acc: dict) -> None:
    enc = (hosp_col if pa.types.is_dictionary(hosp_col.type) else pc.dictionary_encode(hosp_col))
    names = enc.dictionary.cast(pa.string()).to_pylist()
    h = enc.indices.to_numpy(zero_copy_only=False)
    for side in ("from", "to"):
        r = results[side]
        drg = _indices(r.column("drg"))
        n = len(r.column("drg").dictionary)
        counts = np.bincount(h * n + drg, minlength=len(names) * n).reshape(len(names), n)
        per = acc.setdefault(side, {})
        for i, name in enumerate(names):
            if counts[i].any():
                per[name] = per.get(name, 0) + counts[i]


def _matrix(sides: dict, pair_counts: dict) -> pa.Table:
    parts = []
    for level in LEVELS:
        a_vals = sides["from"].values[level].to_pylist()
        b_vals = sides["to"].values[level].to_pylist()
        counts = pair_counts[level]
        nz = np.flatnonzero(counts)
        parts.append(pa.table({
            "level": pa.array([level] * len(nz), pa.string()),
            "from": pa.array([a_vals[i // len(b_vals)] for i in nz], pa.string()),
            "to": pa.array([b_vals[i % len(b_vals)] for i in nz], pa.string()),
            "cases": pa.array(counts[nz].astype(np.int64)),
        }))
    return pa.concat_tables(parts).sort_by([("level", "ascending"), ("cases", "descending")])


def _weights(side: _Side, options) -> dict[str, float]:
    """RW per DRG under this side's scheme, by the weights layer (trimmed, renormalised)."""
    from grouper.analytics.weights import compute_weights

    if not side.costs or not sum(len(c) for c in side.costs):
        return {}
    idx = np.concatenate(side.drg_idx)
    table = pa.table({"drg": pa.DictionaryArray.from_arrays(idx, side.values["drg"]),
                      "status": pa.DictionaryArray.from_arrays(np.zeros(len(idx), np.int32), pa.array(["grouped"])),
                      "total_cost": np.concatenate(side.costs)})
    return compute_weights(table, options, adrg="drg", los=None).weights()


def _summary(rows, seconds, sides, pair_counts, mat, pdx_moves, hospital_drg, has_cost, top, weight_options) -> dict:
    out: dict = {"rows": rows, "seconds": round(seconds, 3), "rows_per_second": rows / seconds if seconds else None}
    for side in ("from", "to"):
        c = sides[side].g.compiled
        out[side] = {"ruleset": c.name, "version": c.version, "fingerprint": c.fingerprint}
    by_level = {lv: mat.filter(pc.equal(mat["level"], lv)) for lv in LEVELS}
    for lv in ("mdc", "adrg", "drg"):
        t = by_level[lv]
        changed = pc.sum(pc.if_else(pc.not_equal(t["from"], t["to"]), t["cases"], 0)).as_py() or 0
        out[f"share_{lv}_changed"] = changed / rows if rows else 0.0
    st = by_level["status"]
    for side, col in (("from", "from"), ("to", "to")):
        counts: dict[str, int] = {}
        for s, n in zip(st[col].to_pylist(), st["cases"].to_pylist()):
            counts[s] = counts.get(s, 0) + n
        out[side]["status_rates"] = {s: n / rows for s, n in sorted(counts.items())} if rows else {}
        out[side]["status_counts"] = dict(sorted(counts.items()))
    out["status_moves"] = [{"from": f, "to": t, "cases": n} for f, t, n in
                           zip(st["from"].to_pylist(), st["to"].to_pylist(), st["cases"].to_pylist()) if f != t]
    out["top_principal_dx_of_cases_leaving_grouped"] = {
        s: dict(sorted(m.items(), key=lambda kv: -kv[1])[:top]) for s, m in pdx_moves.items() if m}
    drg_t = by_level["drg"]
    used_from = set(drg_t["from"].to_pylist())
    used_to = set(drg_t["to"].to_pylist())
    out["new_groups"] = sorted(used_to - used_from - {"0000"})
    out["vanished_groups"] = sorted(used_from - used_to - {"0000"})
    moves = drg_t.filter(pc.not_equal(drg_t["from"], drg_t["to"])).slice(0, top)
    out["largest_drg_moves"] = moves.select(["from", "to", "cases"]).to_pylist()
    if has_cost:
        w = {side: _weights(sides[side], weight_options) for side in ("from", "to")}
        out["weight_options"] = {"trim": weight_options.trim, "min_cases": weight_options.min_cases}
        out["weights"] = w
        if hospital_drg:
            cmi = {}
            for side in ("from", "to"):
                drgs = sides[side].values["drg"].to_pylist()
                rw = np.array([w[side].get(d, 0.0) for d in drgs])
                for h, counts in hospital_drg.get(side, {}).items():
                    grouped = counts[rw > 0].sum()
                    cmi.setdefault(h, {})[side] = float((counts * rw).sum() / grouped) if grouped else None
            out["hospital_cmi"] = dict(sorted(cmi.items()))
    return out


def _drg_level(mat: pa.Table) -> pa.Table:
    return mat.filter(pc.equal(mat["level"], "drg"))


def _split_reads(rs) -> dict[str, tuple[str, ...]]:
    """What each DRG's split condition reads, as labels: ``age``, ``birth weight``, ``CC/MCC``,
    ``<predicate> <list>`` for list predicates (3.0's robot list: ``any_px_in OP_ARB``), else the
    predicate's name. Read from the tables, so any scheme's new splits show up without code."""
    from grouper.rulesets.conditions import predicates

    out: dict[str, set[str]] = {}
    for (_, code), drg in rs.drgs.items():
        labels = out.setdefault(code, set())
        for p in predicates(drg.split_rule):
            name = p["pred"]
            if name.startswith("age_"):
                labels.add("age")
            elif name.startswith("weight_"):
                labels.add("birth weight")
            elif name in ("has_mcc", "has_cc"):
                labels.add("CC/MCC")
            elif "list" in p:
                labels.add(f"{name} {p['list']}")
            else:
                labels.add(name)
    return {code: tuple(sorted(labels)) for code, labels in out.items()}


def _published_drgs(rs) -> set[str]:
    fail = set(rs.engine.get("fail_adrgs", ()))
    return {code for rule, code in rs.drgs if rule not in fail}


def _version_changes(sides: dict, drg_t: pa.Table, rows: int, top: int) -> dict:
    """What a version change does beyond the counts: DRGs defined in one version only (from the
    tables, whether or not cases used them) and the cases moving into the new ones; cases moving
    into DRGs whose split reads age, a procedure list, ...; not-grouped cases by MDC under each
    version (fails inside an MDC, ambiguous groups)."""
    rs_from, rs_to = sides["from"].g.ruleset, sides["to"].g.ruleset
    only_from = sorted(_published_drgs(rs_from) - _published_drgs(rs_to))
    only_to = sorted(_published_drgs(rs_to) - _published_drgs(rs_from))
    new = set(only_to)
    reads = _split_reads(rs_to)
    into_new = 0
    by_label: dict[str, dict[str, int]] = {}
    for f, t, n in zip(drg_t["from"].to_pylist(), drg_t["to"].to_pylist(), drg_t["cases"].to_pylist()):
        if f == t:
            continue
        into_new += n if t in new else 0
        for label in reads.get(t, ()):
            per = by_label.setdefault(label, {})
            per[t] = per.get(t, 0) + n
    moves = {label: {"cases": sum(per.values()), "share": sum(per.values()) / rows if rows else 0.0,
                     "top": [{"drg": d, "cases": c} for d, c in sorted(per.items(), key=lambda kv: -kv[1])[:top]]}
             for label, per in sorted(by_label.items(), key=lambda kv: -sum(kv[1].values()))}
    not_grouped = {side: {st: dict(sorted(((m, n) for (s2, m), n in acc.items() if s2 == st),
                                          key=lambda kv: (-kv[1], kv[0])))
                          for st in NOT_GROUPED if any(s2 == st for s2, _ in acc)}
                   for side, acc in ((side, sides[side].not_grouped) for side in ("from", "to"))}
    return {"drgs_only_in_from": only_from, "drgs_only_in_to": only_to,
            "cases_into_drgs_only_in_to": into_new,
            "moves_into_splits": moves,
            "not_grouped_by_mdc": not_grouped}
