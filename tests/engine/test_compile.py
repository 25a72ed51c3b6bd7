"""The compiled structure: layouts derived from the kernel's structs, opcodes for every predicate,
hand-built programs evaluated by the kernel, and the prefilters' soundness on the real scheme."""

import array
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grouper.engine import _kernel
from grouper.engine.compile import ADRG_DTYPE, COND_DTYPE, MDC_DTYPE, SPLIT_DTYPE, compile_ruleset
from grouper.rulesets.conditions import PREDICATES
from grouper.engine.inputs import ID_EMPTY, ID_UNKNOWN, MISSING
from grouper.engine.status import CHECK_FLAGS, CcLevel, Flag, Status

K = _kernel.CONSTANTS


def test_arrow_field_rows_follow_the_kernel_numbering():
    from grouper.engine.inputs import FIELD_ROWS

    names = {"age": "AGE", "age_days": "AGE_DAYS", "birth_weight": "WEIGHT", "los": "LOS",
             "discharge": "DISCHARGE", "dept": "DEPT", "sex": "SEX"}
    assert [K["FIELD_" + names[r]] for r in FIELD_ROWS] == list(range(K["N_FIELDS"]))


def test_python_flags_and_statuses_mirror_the_kernel():
    """The Python enums read their numbers from the kernel (one source: _records.pxd); the check
    bits the kernel tests as one literal are the Python side's check flags."""
    for f in Flag:
        assert K["F_" + f.name] == f.value
    assert K["F_CHECKS"] == CHECK_FLAGS
    assert [K[k] for k in ("ST_GROUPED", "ST_INVALID", "ST_UNGROUPABLE", "ST_AMBIGUOUS")] == list(Status)
    assert [K["CC_" + c.name] for c in CcLevel] == [int(c) for c in CcLevel]
    assert (MISSING, ID_UNKNOWN, ID_EMPTY) == (K["MISSING"], K["ID_UNKNOWN"], K["ID_EMPTY"]) == (-2**31, -1, -2)
    assert not hasattr(_kernel, "openmp_threads")  # single-threaded kernel; Grouper slices on its pool


def test_record_dtypes_are_the_kernel_structs():
    assert COND_DTYPE.names == ("op", "a", "b", "c") and COND_DTYPE.itemsize == 16
    assert MDC_DTYPE.itemsize == 11 * 4 and ADRG_DTYPE.itemsize == 6 * 4 and SPLIT_DTYPE.itemsize == 8


def tiny_program(cond, cond_args, dx_sets, n_dx=128, n_px=64, mdc=None, adrg=None, split=None, **arrays):
    """A program over hand-built arrays: one MDC, one ADRG, DRGs given by ``split``; ``arrays``
    replace the default of that name."""
    mdc = mdc if mdc is not None else np.array([(0, -1, -1, 0, 1, 0, -1, -1, -1, -1, -1)], MDC_DTYPE)
    adrg = adrg if adrg is not None else np.array([(0, 0, len(split), 0, -1, K["ST_GROUPED"])], ADRG_DTYPE)
    all_bits = np.full(1, np.uint64(2**64 - 1), np.uint64)
    n_none = {"none_mdc": 1, "none_adrg": 1, "none_drg": 3}
    return _kernel.Program({
        "cond": np.array(cond, COND_DTYPE), "cond_args": np.array(cond_args, np.int32),
        "dx_sets": np.array(dx_sets, np.uint64).reshape(len(dx_sets), -1), "px_sets": np.zeros((1, 1), np.uint64),
        "regions": np.full((0, n_dx), -1, np.int8), "cc_class": np.zeros(n_dx, np.uint16),
        "cc_level": np.zeros(1, np.int8), "cc_table": np.full(1, -1, np.int32), "pdx_table": np.full(1, -1, np.int32),
        "dx_bits": np.zeros(1, np.uint64), "px_bits": np.zeros(1, np.uint64),
        "mdc": mdc, "adrg": adrg, "split": np.array(split, SPLIT_DTYPE),
        "dx_class": np.zeros(n_dx + 1, np.uint16), "px_class": np.zeros(n_px + 1, np.uint16),
        "mdc_by_pdx": all_bits, "mdc_by_ppx": all_bits, "mdc_by_anydx": all_bits, "mdc_by_anypx": all_bits,
        "adrg_by_pdx": np.full((1, 1), 2**64 - 1, np.uint64), "adrg_by_ppx": np.full((1, 1), 2**64 - 1, np.uint64),
        "adrg_by_anypx": np.full((1, 1), 2**64 - 1, np.uint64), "mdc_by_age": np.full(152, 2**64 - 1, np.uint64),
        "params": {"use_anydx": False, "use_anypx": False, "use_adrg_anypx": False, "sex_mask": 0b110, "newborn_days": 28, "max_age": 150,
                   "cc_all": False, "require_los": False, "fail_retry": False},
        **n_none, **arrays,
    })


def fields(sex=1, age=40, age_days=100, weight=3000, los=-2**31, discharge=-2**31, dept=-2**31):
    """One case's input row in the kernel's FIELD_* order."""
    row = np.full(K["N_FIELDS"], -2**31, np.int32)
    for name, v in (("AGE", age), ("AGE_DAYS", age_days), ("WEIGHT", weight), ("LOS", los),
                    ("DISCHARGE", discharge), ("DEPT", dept), ("SEX", sex)):
        row[K["FIELD_" + name]] = v
    return row


def test_hand_built_program_follows_first_match_order():
    # node 0: pdx in set 0 (ids 3 and 70); node 1: n_dx > 1; node 2: age >= 65; node 3: TRUE
    bits = np.zeros(2, np.uint64)
    bits[0] |= np.uint64(1 << 3)
    bits[1] |= np.uint64(1 << (70 - 64))
    cond = [(K["OP_PDX_IN"], 0, 0, 0), (K["OP_N_DX_GT"], 1, 0, 0),
            (K["OP_CMP"], K["FIELD_AGE"], K["CMP_GE"], 65), (K["OP_TRUE"], 0, 0, 0)]
    p = tiny_program(cond, [], [bits], split=[(1, 0), (2, 1), (3, 2)])
    one = lambda age, dx: p.group_one(fields(age=age), array.array("i", dx), array.array("i"))  # noqa: E731
    assert one(40, [3, 5]) == (Status.GROUPED, 0, 0, 0, 0, 0, 0)  # two diagnoses -> first DRG
    assert one(70, [70]) == (Status.GROUPED, 0, 0, 1, 0, 0, 0)  # one diagnosis, age 70 -> second
    assert one(40, [70]) == (Status.GROUPED, 0, 0, 2, 0, 0, 0)  # else the unconditional third
    assert one(40, [4])[0] == Status.UNGROUPABLE  # pdx not in the MDC's list
    assert one(40, [-1])[0] == Status.UNGROUPABLE and one(40, [-1])[5] == Flag.UNKNOWN_PDX
    assert one(-2**31, [3])[0] == Status.INVALID  # missing age


def test_and_or_not_nodes_use_their_child_slots():
    # node 3 = and(node 0, not(node 1)) via cond_args[0:2] = [0, 2]; node 2 = not(node 1)
    cond = [(K["OP_HAS_PX"], 0, 0, 0), (K["OP_SEX_EQ"], 2, 0, 0), (K["OP_NOT"], 1, 0, 0),
            (K["OP_AND"], 0, 2, 0), (K["OP_OR"], 2, 2, 0), (K["OP_TRUE"], 0, 0, 0)]
    mdc = np.array([(5, -1, -1, 0, 1, 0, -1, -1, -1, -1, -1)], MDC_DTYPE)
    adrg = np.array([(5, 0, 2, 0, -1, K["ST_GROUPED"])], ADRG_DTYPE)
    p = tiny_program(cond, [0, 2, 0, 1], [np.zeros(2, np.uint64)], mdc=mdc, adrg=adrg, split=[(3, 0), (4, 1)])
    px = array.array("i", [7])
    f1, f2 = fields(sex=1, age=30), fields(sex=2, age=30)
    assert p.group_one(f1, array.array("i", [1]), px)[3] == 0  # male with a procedure
    assert p.group_one(f2, array.array("i", [1]), px)[3] == 1  # female: or(has_px, sex 2)
    assert p.group_one(f2, array.array("i", [1]), array.array("i"))[3] == 1
    assert p.group_one(f1, array.array("i", [1]), array.array("i"))[0] == Status.UNGROUPABLE


def test_every_predicate_of_the_vocabulary_has_an_opcode(ruleset11):
    from grouper.engine.compile import _Compiler

    c = _Compiler(ruleset11)
    owner = "NA1"  # an ADRG with lists dx, px and combination labels
    samples = {"list": "dx", "value": 1, "label": "1", "prefix": "C6", "values": ["1", "ICU"]}
    for name, spec in PREDICATES.items():
        tree = {"pred": name, **{k: samples[k] for k in spec.params}}
        if spec.kind == "px":
            tree["list"] = "px"
        if name == "trauma_regions_ge":
            tree["list"] = "MDCZ.mdc_dx"
        node = c.node(tree, owner)
        assert c.nodes[node][0] not in (K["OP_TRUE"], K["OP_FALSE"]), name


def test_compiled_ruleset_pickles_and_shares_equal_subtrees(ruleset11):
    compiled = compile_ruleset(ruleset11)
    again = pickle.loads(pickle.dumps(compiled))
    assert np.array_equal(again.cond, compiled.cond) and again.drg_codes == compiled.drg_codes
    # 628 DRG splits use only a handful of distinct trees (none / mcc / mcc_or_cc)
    assert len(np.unique(compiled.split["cond"])) <= 4
    assert len(compiled.mdc) == 26 and len(compiled.adrg) == 376 and len(compiled.split) == 628


def test_prefilters_never_rule_out_a_matching_entry(ruleset11):
    """Soundness on the real scheme: a code listed in an entry's pdx list keeps that entry's bit."""
    compiled = compile_ruleset(ruleset11)
    dx_id = {c: i for i, c in enumerate(compiled.dx_codes)}
    mdc_by_pdx, adrg_by_pdx = compiled.by_code("mdc_by_pdx"), compiled.by_code("adrg_by_pdx")
    for pos, m in enumerate(ruleset11.mdcs):
        lst = ruleset11.lists.get((m.code, "mdc_dx"))
        for code in lst.codes if lst else ():
            assert mdc_by_pdx[dx_id[code]] >> np.uint64(pos) & np.uint64(1)
    order = [a for m in ruleset11.mdcs for a in m.adrgs]
    for j, code in enumerate(order):
        lst = ruleset11.lists.get((code, "dx"))
        for c in lst.codes if lst else ():
            assert adrg_by_pdx[dx_id[c], j >> 6] >> np.uint64(j & 63) & np.uint64(1)
    # an unknown principal diagnosis (last row) cannot enter any pdx-listed MDC
    assert bin(int(mdc_by_pdx[-1])).count("1") == 1  # only MDCA (entered by procedure)


def test_codes_with_equal_rows_share_a_class(ruleset11):
    """The class tables hold each distinct row once, and expanding them by class gives back
    exactly the per-code rows the compiler derived (so the kernel reads the same bits)."""
    compiled = compile_ruleset(ruleset11)
    for cls, names in (("dx_class", ("mdc_by_pdx", "mdc_by_anydx", "adrg_by_pdx")),
                       ("px_class", ("mdc_by_ppx", "mdc_by_anypx", "adrg_by_ppx", "adrg_by_anypx", "px_bits")),
                       ("cc_class", ("cc_level", "cc_table", "pdx_table", "dx_bits"))):
        ids = getattr(compiled, cls)
        n = len(getattr(compiled, names[0]))
        assert ids.dtype == np.uint16 and set(np.unique(ids)) == set(range(n))  # every class used
        rows = np.concatenate([getattr(compiled, k).reshape(n, -1).view(np.uint8).reshape(n, -1) for k in names], 1)
        assert len(np.unique(rows, axis=0)) == n  # no two classes alike
    assert len(compiled.mdc_by_pdx) < 500 and len(compiled.mdc_by_ppx) < 2000 and len(compiled.cc_level) < 2000
    dx_id = {c: i for i, c in enumerate(compiled.dx_codes)}
    ptab = compiled.by_code("pdx_table")
    lv = compiled.by_code("cc_level")
    for code, (level, table) in list(ruleset11.cc.items())[:2000]:
        assert lv[dx_id[code]] == sum({"CC": 1, "MCC": 2}[x] for x in level.split("+"))
    excluded = [code for code, table in ruleset11.pdx_excl.items() if table]
    assert excluded and all(ptab[dx_id[c]] >= 0 for c in excluded)


def test_program_rejects_inconsistent_arrays():
    with pytest.raises(ValueError, match="same length"):
        p = tiny_program([(K["OP_TRUE"], 0, 0, 0)], [], [np.zeros(2, np.uint64)], split=[(0, 0)])
        z = np.zeros(2, np.int32)
        p.group_batch(np.zeros((K["N_FIELDS"], 2), np.int32), np.zeros(3, np.int32), z, np.zeros(3, np.int32), z,
                      np.zeros(2, np.int8), z[:1], z, z, np.zeros(2, np.int8), z)


def test_program_reads_named_fields_and_names_a_wrong_one(ruleset11):
    """``Program(compiled)`` takes the arrays by name (attributes or a mapping), so two
    same-shaped arrays cannot be swapped by position; a wrong dtype, shape or absent field is
    an error naming the field."""
    compiled = compile_ruleset(ruleset11)
    named = {f: getattr(compiled, f) for f in (*_kernel.ARRAYS, *_kernel.NONE_CODES, "params")}
    case = (fields(age=50), array.array("i", [compiled.dx_codes.index("I21.000")]), array.array("i"))
    assert _kernel.Program(named).group_one(*case) == compiled.program().group_one(*case)
    for name, value, message in [
            ("cond", compiled.cond_args, "'cond' must be a 1-d COND array, got int32"),
            ("cond_args", compiled.cond_args.astype(np.int64), "'cond_args' must be a 1-d int32 array, got int64"),
            ("dx_sets", compiled.dx_sets[0], "'dx_sets' must be a 2-d uint64 array"),
            ("mdc_by_pdx", list(compiled.mdc_by_pdx), "'mdc_by_pdx' must be a 1-d uint64 array, got list"),
            ("cc_table", compiled.cc_table[:-1], "'cc_table' must have"),
            ("cc_level", compiled.cc_level[:-1], "'cc_table' must have"),
            ("cc_class", compiled.cc_class[:-1], "'cc_class' must have"),
            ("dx_class", compiled.dx_class.astype(np.int32), "'dx_class' must be a 1-d uint16 array"),
            ("dx_class", compiled.dx_class[:-1], "prefilter tables do not fit"),
            ("mdc_by_pdx", compiled.mdc_by_pdx[:-1], "prefilter tables do not fit"),
            ("adrg_by_pdx", np.asfortranarray(np.repeat(compiled.adrg_by_pdx, 2, axis=1)), "C-contiguous")]:
        with pytest.raises(ValueError, match=message):
            _kernel.Program({**named, name: value})
    with pytest.raises(ValueError, match="has no field 'split'"):
        _kernel.Program({k: v for k, v in named.items() if k != "split"})
    swapped = {**named, "mdc_by_pdx": compiled.mdc_by_ppx, "mdc_by_ppx": compiled.mdc_by_pdx}
    with pytest.raises(ValueError, match="prefilter tables do not fit"):
        _kernel.Program(swapped)


def test_dump_decodes_the_compiled_program(ruleset11):
    text = compile_ruleset(ruleset11).dump()
    lines = text.splitlines()
    assert lines[0].startswith("compiled chs-drg-1.1 1.1 (fingerprint ")
    assert sum(line.startswith("MDC ") for line in lines) == 26
    assert sum(line.startswith("  ADRG ") for line in lines) == 376
    assert sum(line.startswith("    DRG ") for line in lines) == 628
    assert "  ADRG AA1 心脏移植" in lines and "    entry: prefilter: principal px in [1: 37.5100]" in lines
    assert "any_px_in(AC1/px [3: 52.8000, 52.8200, 52.8300])" in text  # a list decoded to its codes
    assert any("has_mcc" in line for line in lines if line.startswith("    DRG "))


def test_drg_compile_dump_prints_the_program(ruleset11):
    from click.testing import CliRunner

    from grouper.cli.main import main

    result = CliRunner().invoke(main, ["compile", "chs-drg-1.1", "--dump"])
    assert result.exit_code == 0, result.output
    assert result.output == compile_ruleset(ruleset11).dump()
    result = CliRunner().invoke(main, ["compile", "chs-drg-1.1"])
    assert result.exit_code == 0 and "26 MDC, 376 ADRG and 628 DRG records" in result.output


@pytest.mark.parametrize("name", ["chs-drg-1.1", "chs-drg-2.0", "chs-drg-3.0", "anyang-2021"])
def test_summary_bits_are_the_lists_their_nodes_test(name):
    """Bit b - 1 of a code's summary word (by its class) is set exactly when the code is in the
    list of the nodes whose field b is b; every list tested by any_/secondary nodes gets a bit
    while there are at most 64 of them (anyang-2021 has more procedure lists: the rest loop)."""
    import grouper

    compiled = grouper.Grouper(name).compiled
    for kind, ops, sets, bits in (
            ("dx", ("OP_ANY_DX_IN", "OP_SDX_IN"), compiled.dx_sets, compiled.by_code("dx_bits")),
            ("px", ("OP_ANY_PX_IN", "OP_SPX_IN"), compiled.px_sets, compiled.by_code("px_bits")[:-1])):
        nodes = compiled.cond[np.isin(compiled.cond["op"], [K[o] for o in ops])]
        lists = sorted(set(nodes["a"].tolist()))
        assert len(set(nodes["b"][nodes["b"] > 0].tolist())) == min(64, len(lists))
        for a, b in set(zip(nodes["a"].tolist(), nodes["b"].tolist())):
            if b == 0:
                assert len(lists) > 64
                continue
            member = np.unpackbits(sets[a].view(np.uint8), bitorder="little")[:len(bits)]
            assert np.array_equal((bits >> np.uint64(b - 1)) & np.uint64(1), member.astype(np.uint64)), (kind, a)
        assert compiled.by_code("px_bits")[-1] == 0  # no procedure: no list


_IDS = st.one_of(st.integers(0, 69), st.sampled_from([ID_UNKNOWN, ID_EMPTY]))


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(["OP_ANY_DX_IN", "OP_SDX_IN", "OP_ANY_PX_IN", "OP_SPX_IN"]),
       members=st.sets(st.integers(0, 69), max_size=12), bit=st.integers(1, 64), summary=st.booleans(),
       dx=st.lists(_IDS, min_size=1, max_size=7), px=st.lists(_IDS, max_size=6))
def test_a_summary_bit_is_the_loop_over_the_codes(kind, members, bit, summary, dx, px):
    """One list node read from its summary bit (b = bit) or by the loop (b = 0) gives the direct
    definition: some known diagnosis (sdx_in: after the first position), some known procedure from
    the principal (first non-empty) one on (spx_in: after it), unknown and empty ids never in."""
    n = 70
    row = np.zeros(2, np.uint64)
    for i in members:
        row[i >> 6] |= np.uint64(1) << np.uint64(i & 63)
    word = np.array([np.uint64(1) << np.uint64(bit - 1) if i in members else 0 for i in range(n)], np.uint64)
    is_dx = "DX" in kind
    cond = [(K[kind], 0, bit if summary else 0, 0), (K["OP_TRUE"], 0, 0, 0)]
    classes = np.arange(n + 1, dtype=np.uint16)
    every = np.full(n + 1, np.uint64(2**64 - 1), np.uint64)
    mdc = np.array([(-1, -1, -1, 0, 1, 0, -1, -1, -1, -1, -1)], MDC_DTYPE)  # entered, no entry rule
    adrg = np.array([(-1, 0, 2, 0, -1, K["ST_GROUPED"])], ADRG_DTYPE)  # DRG 0 when the node holds, else 1
    p = tiny_program(cond, [], [row] if is_dx else [np.zeros(2, np.uint64)], n_dx=n, n_px=n, mdc=mdc, adrg=adrg,
                     split=[(0, 0), (1, 1)],
                     px_sets=np.zeros((1, 2), np.uint64) if is_dx else row.reshape(1, 2),
                     cc_class=classes[:n], cc_level=np.zeros(n, np.int8), cc_table=np.full(n, -1, np.int32),
                     pdx_table=np.full(n, -1, np.int32), dx_bits=word if is_dx else np.zeros(n, np.uint64),
                     px_class=classes, px_bits=np.zeros(n + 1, np.uint64) if is_dx else np.append(word, np.uint64(0)),
                     mdc_by_ppx=every, mdc_by_anypx=every, adrg_by_ppx=every.reshape(-1, 1),
                     adrg_by_anypx=every.reshape(-1, 1))
    if dx[0] == ID_EMPTY:
        dx[0] = 0  # an empty principal diagnosis is invalid input: nothing is evaluated
    known = [i for i in (dx if kind == "OP_ANY_DX_IN" else dx[1:])] if is_dx else []
    if not is_dx:
        ppx = next((j for j, i in enumerate(px) if i != ID_EMPTY), None)
        known = [] if ppx is None else px[ppx:] if kind == "OP_ANY_PX_IN" else px[ppx + 1:]
    expect = any(i in members for i in known if i >= 0)
    got = p.group_one(fields(), array.array("i", dx), array.array("i", px))
    assert got[0] == Status.GROUPED and got[3] == (0 if expect else 1)


def test_the_age_prefilter_is_a_necessary_condition():
    """Bit i of row a is clear only when MDC i's rules cannot hold at age a: and takes every
    comparison, or needs each branch to constrain, not and other fields leave the age free."""
    from grouper.engine.tables import age_prefilter

    age = lambda cmp, v: {"pred": f"age_years_{cmp}", "value": v}  # noqa: E731
    other = {"pred": "has_px"}
    trees = [age("eq", 0), {"op": "and", "args": [age("ge", 18), other, age("lt", 65)]},
             {"op": "or", "args": [age("lt", 1), age("gt", 149)]}, {"op": "or", "args": [age("eq", 3), other]},
             {"op": "not", "arg": age("eq", 0)}, {"pred": "age_days_le", "value": 28}]
    rows = age_prefilter(trees, 150)
    allowed = [[a for a in range(151) if rows[a] >> np.uint64(i) & np.uint64(1)] for i in range(len(trees))]
    assert allowed[0] == [0] and allowed[1] == list(range(18, 65)) and allowed[2] == [0, 150]
    assert allowed[3] == allowed[4] == allowed[5] == list(range(151))
    assert len(rows) == 152 and rows[-1] == np.uint64(2**64 - 1)  # a last row for older ages: every MDC
    wide = age_prefilter(trees, 2**31 - 1)  # a scheme valid to any age: one row per age up to 255, then all
    assert len(wide) == 257 and wide[-1] == np.uint64(2**64 - 1) and np.array_equal(wide[:151], rows[:151])


def test_mdcp_is_open_to_newborns_only(ruleset11):
    """On the national scheme the age rows rule MDCP out past age 0 and leave the others open."""
    compiled = compile_ruleset(ruleset11)
    pos = [m.code for m in ruleset11.mdcs].index("MDCP")
    bit = np.uint64(1) << np.uint64(pos)
    assert compiled.mdc_by_age[0] & bit and not any(compiled.mdc_by_age[1:-1] & bit)
    others = np.uint64((1 << len(ruleset11.mdcs)) - 1) & ~bit
    assert all((row & others) == others for row in compiled.mdc_by_age)
