"""A DRG settlement run: the passes over the batches in order, the rate scale, the waterfall
steps, and the result."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa

from grouper._util.money import ExactTotal
from grouper.io import DEFAULT_BATCH
from grouper.payment.drg.cases import Prep, Run
from grouper.payment.drg.gather import Pass1
from grouper.payment.drg.inputs import (PASS_THROUGH, SETTLE_STATUSES, DrgColumns, DrgSettlement,
                                        uses_level)
from grouper.payment.drg.renormalise import solve_scale, spool_pass
from grouper.payment.drg.totals import Pass2
from grouper.payment.drg.waterfall import knob_steps, waterfall
from grouper.payment.pack import PaymentPack


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.Table:
    """A batch as a table with every column of ``schema`` (all the inputs together), one type
    per column: null where this input lacks the column, cast where its type differs."""
    if batch.schema.names == schema.names and batch.schema.types == schema.types:
        return pa.Table.from_batches([batch])
    have = dict(zip(batch.schema.names, batch.columns))
    cols = []
    for f in schema:
        c = have.get(f.name)
        cols.append(pa.nulls(batch.num_rows, f.type) if c is None else c if c.type == f.type else c.cast(f.type))
    return pa.Table.from_arrays(cols, schema=pa.schema(list(schema)))


def settle_batches(batches: Callable[[], Iterable[pa.RecordBatch]], pack: PaymentPack, weights: pa.Table,
                   hospitals: pa.Table | None = None, *, columns: DrgColumns = DrgColumns(),
                   schema: pa.Schema | None = None,
                   sink: Callable[[Iterator[pa.RecordBatch]], object] | None = None,
                   plain_dictionaries: bool = False, require_rows: bool = False) -> DrgSettlement:
    """Settle grouped cases streamed as ``batches()``, a function returning a fresh iterable of
    RecordBatches on every call. It is called twice (pass 1: year totals and special review;
    pass 2: per case), and once more first when the rate is budget / the data's own total
    weight and pass 1 already needs the rate (renormalisation, or the payment standard as
    outlier base with special review). ``schema``: the columns of all the inputs together
    (default: the first batch's); a batch lacking one reads it as null. Per-case batches go to
    ``sink`` in input order, or into ``DrgSettlement.cases``. ``plain_dictionaries`` decodes
    pass-through columns whose dictionary changes between batches (for Arrow IPC files)."""
    run = Run(pack, weights, hospitals, columns)
    renorm = pack.rate.renormalize
    fixed_schema = [schema]

    def stream() -> Iterator[Prep]:
        row = 0
        for b in batches():
            if fixed_schema[0] is None:
                fixed_schema[0] = b.schema
            p = run.prepare(conform(b, fixed_schema[0]), row)
            row += p.n
            yield p

    # the provisional base rate: known now, or after a pass over the weights of the data
    from_data = pack.rate.value is None and pack.rate.expected_weight == "data"
    pass1_prices = renorm != "none" or (not run.fixed and run.review)
    data_weight = None
    if from_data and pass1_prices:  # pass 0
        w = ExactTotal("the weights of the cases")
        for p in stream():
            w.add(p.rw[(p.kind == 0) & ~np.isnan(p.rw)])
        data_weight = w.value()
    if not from_data or data_weight is not None:
        run.base = pack.rate.base(data_weight)

    steps = waterfall(pack)  # pack rate, no knobs -> + referral -> + each quality rule -> renormalised -> sharing
    one = Pass1(run, knob_steps(steps))
    try:
        for p in stream():
            one.add(p)
        if one.spool is not None:
            one.spool.close_writer()
        if require_rows and one.n == 0:
            raise ValueError("no cases in the input")
        if uses_level(pack) and not run.level_seen and one.n:
            raise ValueError(f"the pack sets values by hospital level but there is no level: no column "
                             f"{columns.level!r} in the cases and no level column in the hospital table")
        if pack.rate.expected_weight == "data":
            data_weight = one.weight.value()
        if math.isnan(run.base):
            run.base = pack.rate.base(data_weight)

        # special review per pricing, and the totals at the pack rate
        allowed = one.allowed()
        chosen, totals = {}, {}
        for key, cd in one.cands.items():
            rows, taken = cd.select(allowed)
            chosen[key] = rows if run.review else None
            totals[key] = dict(zip(cd.evals, (e.value() for e in cd.totals(taken))))

        # the rate scale s
        target = None
        s = 1.0
        if renorm != "none":  # "knobs": the total without knobs at the pack rate
            target = pack.rate.budget if renorm == "budget" else \
                totals[None if run.fixed else one.base][(one.base, 1.0)]
            s = solve_scale(run, one, target, totals[None if run.fixed else one.last], allowed)
            if not run.fixed and run.review:  # special review at the final scale
                rescaled = next(x for x in steps if x.kind == "renormalisation")
                chosen[rescaled] = spool_pass(run, one.spool, s, allowed, False)[0]
    finally:
        if one.spool is not None:
            one.spool.remove()

    run.hosp.knobs(pack)  # (an input without rows never read it)
    # the special-review rows each step prices with: one choice for all with C̄_g as outlier base
    if not run.review:
        chosen_at = {x: None for x in steps}
    elif run.fixed:
        chosen_at = {x: chosen[None] for x in steps}
    else:
        chosen_at = {x: chosen[x] for x in steps if x.per_case}

    out_types = {}
    for role in PASS_THROUGH:  # one dictionary per column in an IPC file: decode where it changes
        d = one.dicts.get(role)
        name = getattr(columns, role)
        if plain_dictionaries and d is not None and d[1]:
            out_types[role] = fixed_schema[0].field(name).type.value_type
    two = Pass2(run, steps, s, chosen_at, out_types, np.array(sorted(one.months), np.int64))

    def per_case() -> Iterator[pa.RecordBatch]:
        rows = 0
        for p in stream():
            rows += p.n
            yield two.add(p)
        if rows != one.n:  # raised inside the writer: no output file is left behind
            raise ValueError(f"the input changed between the two passes ({one.n} rows, then {rows})")

    if sink is not None:
        sink(per_case())
        case_table = None
    else:
        case_table = pa.Table.from_batches(list(per_case()))
    hosp_table, totals_out, extra = two.hospital_table(one)
    summary = {
        "pack": {"name": pack.name, "region": pack.region, "year": pack.year, "illustrative": pack.illustrative,
                 "basis": pack.basis, "path": pack.path},
        "rows": one.n,
        "settle_status": {name: int(two.status[code]) for code, name in enumerate(SETTLE_STATUSES)},
        "case_types": extra["case_types"], "hospitals": extra["hospitals"],
        "rate": {"provisional_base": run.base, "expected_weight_from_data": data_weight, "scale": s,
                 "final_base": run.base * s, "overall_mean_cost": run.weights.cbar, "renormalize": renorm,
                 "target": target},
        "totals": totals_out, "knob_effects": extra["knob_effects"], "counts": extra["counts"],
        "passes": 2 + (from_data and pass1_prices),
    }
    if target is not None:
        achieved = totals_out["fund_payment"] if pack.basis == "fund" else totals_out["payment"]
        summary["rate"]["achieved"] = achieved
        summary["rate"]["residual"] = achieved - target
    return DrgSettlement(case_table, hosp_table, two.months_table(), summary)


def settle(cases: pa.Table, pack: PaymentPack, weights: pa.Table, hospitals: pa.Table | None = None, *,
           columns: DrgColumns = DrgColumns(), batch_size: int = DEFAULT_BATCH) -> DrgSettlement:
    """Settle grouped ``cases`` (the grouper's output with cost and the other columns kept) under
    ``pack`` with the weights table of ``drg weights`` (drg, rw, mean_cost, mean_los, n). The
    same two passes as the files, over the table's batches of ``batch_size`` rows."""
    if isinstance(cases, pa.RecordBatch):
        cases = pa.Table.from_batches([cases])
    parts = cases.to_batches(max_chunksize=batch_size) or [
        pa.RecordBatch.from_arrays([pa.array([], f.type) for f in cases.schema], schema=cases.schema)]
    return settle_batches(lambda: iter(parts), pack, weights, hospitals, columns=columns, schema=cases.schema)
