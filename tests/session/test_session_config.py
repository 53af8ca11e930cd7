"""Session files: the schema, located error messages, ``--set`` overrides, the embedded default.

Every TOML text below is written in the test, so each expected ``line:col``
is read off the text: lines count from 1, the column is where the key starts.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pageext_core.mm.constants import GiB, MiB
from pageext_core.session.config import DEFAULT_SESSION, SessionError, load_session
from pageext_core.session.sourcemap import SourceMap

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def error_of(tmp_path: Path, text: str, overrides: tuple[str, ...] = ()) -> tuple[str, str]:
    """(path prefix, message) of the SessionError that loading ``text`` from a file raises."""
    p = tmp_path / "exp.toml"
    p.write_text(text)
    with pytest.raises(SessionError) as ei:
        load_session(p, overrides=overrides)
    return str(p), str(ei.value)


# -- unknown keys: position and suggestion -----------------------------------------------------


def test_unknown_key_names_line_column_and_the_closest_key(tmp_path: Path) -> None:
    text = '[session]\nname = "x"\n\n[machine]\nmemroy = "64MiB"\n'
    path, msg = error_of(tmp_path, text)
    assert msg == f"{path}:5:1: [machine] memroy: unknown key; did you mean 'memory'?"


def test_indented_unknown_key_reports_its_own_column(tmp_path: Path) -> None:
    text = '[machine]\nmemory = "64MiB"\n    cpuss = 2\n'
    path, msg = error_of(tmp_path, text)
    assert msg == f"{path}:3:5: [machine] cpuss: unknown key; did you mean 'cpus'?"


def test_unknown_key_without_close_match_lists_the_valid_ones(tmp_path: Path) -> None:
    path, msg = error_of(tmp_path, '[plugins]\nzzzzzz = 1\n')
    assert msg == f"{path}:2:1: [plugins] zzzzzz: unknown key; valid keys: disable, strict, autoload"


def test_unknown_table(tmp_path: Path) -> None:
    path, msg = error_of(tmp_path, '# comment\n[machin]\nmemory = "64MiB"\n')
    assert msg == f"{path}:2:1: [machin]: unknown key; did you mean 'machine'?"


def test_unknown_dotted_key_is_located_on_its_line(tmp_path: Path) -> None:
    path, msg = error_of(tmp_path, '# top-level dotted keys\nworkload.operations = 3\nworkload.sed = 3\n')
    assert msg == f"{path}:3:1: [workload] sed: unknown key; did you mean 'seed'?"
    # Under [session], workload.sed is session.workload: the unknown key is 'workload', on line 3.
    path, msg = error_of(tmp_path, '[session]\nname = "n"\nworkload.sed = 3\n')
    assert msg == f"{path}:3:1: [session] workload: unknown key; valid keys: name, description"


def test_unknown_key_in_inline_table_is_located_at_the_inline_key(tmp_path: Path) -> None:
    text = '[workload]\nhotplug = [{ at = 5, actoin = "online" }]\n'
    path, msg = error_of(tmp_path, text)
    col = text.splitlines()[1].index("actoin") + 1
    assert msg == f"{path}:2:{col}: [workload.hotplug] entry 1: actoin: unknown key; did you mean 'action'?"


def test_unknown_fault_kind(tmp_path: Path) -> None:
    path, msg = error_of(tmp_path, '[workload]\noperations = 10\n\n[workload.faults]\nuse_after_fre = 1\n')
    assert msg == f"{path}:5:1: [workload.faults] use_after_fre: unknown key; did you mean 'use_after_free'?"


def test_unknown_session_key(tmp_path: Path) -> None:
    path, msg = error_of(tmp_path, '[session]\nnmae = "x"\n')
    assert msg == f"{path}:2:1: [session] nmae: unknown key; did you mean 'name'?"


def test_stray_key_in_boot_table(tmp_path: Path) -> None:
    path, msg = error_of(tmp_path, '[boot]\ncmdlin = "page_owner=on"\n')
    assert msg == f"{path}:2:1: [boot] cmdlin: unknown key; [boot] takes cmdline = \"...\" and [boot.<client>] tables"


def test_text_without_path_is_named_session(tmp_path: Path) -> None:
    with pytest.raises(SessionError) as ei:
        load_session(text='[machine]\nmemroy = 1\n')
    assert str(ei.value) == "<session>:2:1: [machine] memroy: unknown key; did you mean 'memory'?"


# -- wrong types --------------------------------------------------------------------------------


@pytest.mark.parametrize("text, line, expected", [
    ('[machine]\nmemory = "64MiB"\ncpus = "2"\n', 3, "[machine] cpus: expected an integer, got '2'"),
    ('[machine]\nmemory = "64MiB"\ncpus = true\n', 3, "[machine] cpus: expected an integer, got true"),
    ('[machine]\nmemory = "64MiB"\nx86_holes = 1\n', 3, "[machine] x86_holes: expected true or false, got int 1"),
    ('[plugins]\nautoload = "no"\n', 2, "[plugins] autoload: expected true or false, got 'no'"),
    ('[plugins]\ndisable = { a = 1 }\n', 2, "[plugins] disable: expected a list of strings, got a table"),
    ('[plugins]\ndisable = ["page_owner", 3]\n', 2, "[plugins] disable: item 2 should be a string, got int 3"),
    ('[report]\nreports = { page_owner = true }\n', 2, "[report] reports: expected a list of strings, got a table"),
    ('[report]\nreports = "buddyinfo"\n', 2, "[report] reports: expected a list of strings, got 'buddyinfo'"),
    ('[report]\nout = 5\n', 2, "[report] out: expected a string, got int 5"),
    ('[workload]\nlifetime = "long"\n', 2, "[workload] lifetime: expected a number, got 'long'"),
    ('[workload]\noperations = 2.5\n', 2, "[workload] operations: expected an integer, got float 2.5"),
    ('[workload]\nhotplug = { at = 1 }\n', 2,
     '[workload] hotplug: expected a list of tables: hotplug = [{at = 1000, action = "online"}]'),
    ('[boot]\ncmdline = 5\n', 2, "[boot] cmdline: expected a string, got int 5"),
    ('machine = 5\n', 1, "[machine]: expected a table, got int 5"),
    ('[report]\nparams = { a = 1 }\n', 2,
     '[report] params: expected a table of tables: [report.params."name"] key = value'),
])
def test_wrong_types(tmp_path: Path, text: str, line: int, expected: str) -> None:
    path, msg = error_of(tmp_path, text)
    assert msg == f"{path}:{line}:1: {expected}"


def test_boot_not_a_table(tmp_path: Path) -> None:
    path, msg = error_of(tmp_path, 'boot = "page_owner=on"\n')
    assert msg == f"{path}:1:1: [boot]: expected a table"


# -- values out of range, bad enumerations ----------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ('[workload]\noperations = -5\n', "[workload] operations: -5 is out of range (0..1000000000)"),
    ('[workload]\nleak_fraction = 1.5\n', "[workload] leak_fraction: 1.5 is out of range: expected 0.0..1.0"),
    ('[machine]\ncpus = 0\n', "[machine] cpus: 0 is out of range (1..4096)"),
    ('[workload]\nkind = "synth"\n', "[workload] kind: 'synth': expected \"synthetic\", \"function\" or \"replay\""),
    ('[machine]\nmemory_model = "DISCONTIG"\n',
     "[machine] memory_model: 'DISCONTIG': expected \"SPARSEMEM\" or \"FLATMEM\""),
    ('[workload]\nfunction = "my_workload.run"\n',
     '[workload] function: a function workload needs function = "package.module:function"'),
])
def test_out_of_range_and_bad_choices(tmp_path: Path, text: str, expected: str) -> None:
    path, msg = error_of(tmp_path, text)
    assert msg == f"{path}:2:1: {expected}"


def test_function_with_synthetic_kind_points_at_function(tmp_path: Path) -> None:
    path, msg = error_of(tmp_path, '[workload]\nkind = "synthetic"\nfunction = "m:f"\n')
    assert msg == f"{path}:3:1: [workload] function: set kind = \"function\" (or drop kind) to run a function workload"


def test_bad_weights_are_located_at_their_inline_key(tmp_path: Path) -> None:
    text = '[workload]\ngfp = { GFP_KERNEL = 3, GFP_BOGUS = 1 }\n'
    path, msg = error_of(tmp_path, text)
    col = text.splitlines()[1].index("GFP_BOGUS") + 1
    assert msg.startswith(f"{path}:2:{col}: [workload.gfp] GFP_BOGUS: ")
    assert "GFP_BOGUS" in msg.split(": ", 3)[-1]

    text = '[workload]\norders = { 0 = 70, 1 = -1 }\n'
    path, msg = error_of(tmp_path, text)
    col = text.splitlines()[1].index("1 = -1") + 1
    assert msg == f"{path}:2:{col}: [workload.orders] 1: weight must be a non-negative number, got int -1"

    path, msg = error_of(tmp_path, '[workload]\norders = { 0 = 0 }\n')
    assert msg == f"{path}:2:1: [workload] orders: weights add up to zero"


def test_task_entries_are_checked(tmp_path: Path) -> None:
    text = '[workload]\ntasks = [{ pid = 1, comm = 5 }]\n'
    path, msg = error_of(tmp_path, text)
    col = text.splitlines()[1].index("comm") + 1
    assert msg == f"{path}:2:{col}: [workload.tasks] entry 1: comm: expected a string"
    path, msg = error_of(tmp_path, '[workload]\ntasks = [{ comm = "x" }]\n')
    assert msg == f"{path}:2:1: [workload] tasks: task 1 needs pid and comm"


# -- sizes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ('"4GB5"', "cannot read size '4GB5'"),
    ('"1.5B"', "'1.5B' is not a whole number of bytes"),
    ('"-1GiB"', "size '-1GiB' is negative"),
    ('"12 parsecs"', "cannot read size '12 parsecs'; write a number with a unit: B, KiB, MiB, GiB or TiB "
                     "(e.g. '4GiB', '512MiB')"),
    ("true", "expected a size like '4GiB', got True"),
])
def test_bad_sizes_are_reported_at_the_key(tmp_path: Path, value: str, expected: str) -> None:
    path, msg = error_of(tmp_path, f'[machine]\ncpus = 1\nmemory = {value}\n')
    assert msg.startswith(f"{path}:3:1: [machine] memory: {expected}")


@pytest.mark.parametrize("key", ["movablecore", "hotplug", "kernel_image", "dma_limit"])
def test_negative_sizes_are_refused_for_every_size_key(tmp_path: Path, key: str) -> None:
    # "-128MiB" once slipped through parse_size: hotplug crashed with an IndexError,
    # a negative kernel_image booted.
    path, msg = error_of(tmp_path, f'[machine]\nmemory = "128MiB"\n{key} = "-128MiB"\n')
    assert msg == f"{path}:3:1: [machine] {key}: size '-128MiB' is negative"


def test_bad_size_in_a_node_list_names_the_node(tmp_path: Path) -> None:
    path, msg = error_of(tmp_path, '[machine]\nmemory = ["128MiB", "12XB"]\n')
    assert msg.startswith(f"{path}:2:1: [machine] memory: node 1: cannot read size '12XB'")
    path, msg = error_of(tmp_path, '[machine]\nmemory = ["128MiB", "-128MiB"]\n')
    assert msg == f"{path}:2:1: [machine] memory: node 1: size '-128MiB' is negative"


@pytest.mark.parametrize("machine, line, expected", [
    ('memory = "66MiB"', 4, "node 0 memory 66MiB: must be a positive multiple of 4MiB (one max-order block)"),
    ('memory = "0"', 4, "node 0 memory 0B: must be a positive multiple of 4MiB (one max-order block)"),
    ('memory = ["128MiB", "64MiB"]', 4,
     "node 1 memory 64MiB: with several nodes each must be a multiple of the section size 128MiB"),
    ('memory = "128MiB"\nhotplug = "100MiB"', 5, "hotplug 100MiB must be a multiple of the memory block size 128MiB"),
    # pageblock_order (not written, default 9) and max_order (written): the one the file has.
    ('cpus = 1\nmax_order = 8', 5, "pageblock_order 9: expected 0..max_order (8)"),
])
def test_geometry_that_cannot_be_built(tmp_path: Path, machine: str, line: int, expected: str) -> None:
    # A check over several keys points at the first of them the file writes.
    path, msg = error_of(tmp_path, f'# a machine\n\n[machine]\n{machine}\n')
    assert msg == f"{path}:{line}:1: [machine]: {expected}"


# -- TOML syntax ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, line", [
    ('[machine]\nmemory = "64MiB\ncpus = 2\n', 2),
    ('[machine]\nmemory = 64MiB\n', 2),
    ('[machine]\ncpus = 2\n[machine]\n', 3),
])
def test_syntax_error_shows_the_parsers_line_and_column(tmp_path: Path, text: str, line: int) -> None:
    path, msg = error_of(tmp_path, text)
    with pytest.raises(tomllib.TOMLDecodeError) as parser:
        tomllib.loads(text)
    assert msg == f"{path}: TOML syntax error: {parser.value}"
    assert f"(at line {line}, column " in msg


def test_missing_file_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(SessionError, match=r"nope\.toml: no such session file$"):
        load_session(tmp_path / "nope.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'[session]\nname = "caf\xe9"\n')
    with pytest.raises(SessionError, match=r"latin1\.toml: cannot read it: "):
        load_session(bad)


# -- --set overrides ----------------------------------------------------------------------------------


def test_set_without_equals_sign(tmp_path: Path) -> None:
    for item in ("workload.operations", "=5", "  =5"):
        _, msg = error_of(tmp_path, "", overrides=(item,))
        assert msg == f"--set {item!r}: expected KEY=VALUE, e.g. --set workload.operations=5000"


def test_set_values_are_toml_or_bare_words(tmp_path: Path) -> None:
    p = tmp_path / "s.toml"
    p.write_text('[machine]\nmemory = "256MiB"\ncpus = 2\n[workload]\noperations = 10\n')
    s = load_session(p, overrides=[
        "workload.operations=5000",           # an integer
        "machine.memory=128MiB",              # a bare word: a string
        "machine.cpus=1",
        "workload.orders={0 = 9, 9 = 1}",     # an inline table
        "boot.cmdline=page_owner=on",         # everything after the first '=' is the value
        "workload.leak_fraction=0.25",
    ])
    assert s.workload.operations == 5000
    assert s.machine.memory == 128 * MiB and s.machine.cpus == 1
    assert s.workload.orders == {0: 9.0, 9: 1.0}
    assert s.cmdline == "page_owner=on"
    assert s.workload.leak_fraction == 0.25


def test_set_accepts_quoted_key_parts(tmp_path: Path) -> None:
    # Report names with '/' can only be written quoted; --set must take them like the file does.
    s = load_session(text="", overrides=['report.params."page_owner_stacks/show_stacks".count_threshold=4'])
    assert s.report.params == {"page_owner_stacks/show_stacks": {"count_threshold": 4}}
    _, msg = error_of(tmp_path, "", overrides=("work load.x=1",))
    assert msg == "--set 'work load.x=1': 'work load.x' is not a key path like workload.operations"


def test_set_is_validated_like_the_file(tmp_path: Path) -> None:
    # Checked like the file, but reported as the option that set the value.
    _, msg = error_of(tmp_path, '[machine]\nmemory = "64MiB"\ncpus = 1\n', overrides=("machine.cpus=abc",))
    assert msg == "--set machine.cpus=abc: [machine] cpus: expected an integer, got 'abc'"
    _, msg = error_of(tmp_path, '[machine]\nmemory = "64MiB"\n', overrides=("machine.memroy=1",))
    assert msg == "--set machine.memroy=1: [machine] memroy: unknown key; did you mean 'memory'?"
    _, msg = error_of(tmp_path, '[workload]\noperations = 5\n', overrides=("workload.operations.x=1",))
    assert msg == "--set 'workload.operations.x=1': 'operations' is not a table"


# -- what a valid file gives ---------------------------------------------------------------------------


def test_defaults_and_names(tmp_path: Path) -> None:
    p = tmp_path / "my_experiment.toml"
    p.write_text('[machine]\nmemory = ["128MiB", "256MiB"]\n[boot.page_owner]\nenabled = true\n'
                 '[report]\nreports = ["all"]\n')
    s = load_session(p)
    assert s.name == "my_experiment"  # the file's stem
    assert s.path == p
    assert s.machine.memory == (128 * MiB, 256 * MiB) and s.machine.nodes == 2
    assert s.boot_tables == {"page_owner": {"enabled": True}} and s.cmdline == ""
    assert s.report.reports is None  # "all"
    assert s.workload.kind == "synthetic" and s.workload.operations == 20000 and s.workload.seed == 0
    assert s.workload.base_dir == str(tmp_path.resolve())
    assert s.plugins.autoload is True and s.plugins.disable == [] and s.plugins.strict is False
    p.write_text('[session]\nname = "named"\ndescription = "d"\n[workload]\nfunction = "m:f"\n'
                 '[workload.params]\nn = 3\n')
    s = load_session(p)
    assert (s.name, s.description) == ("named", "d")
    assert (s.workload.kind, s.workload.function, s.workload.params) == ("function", "m:f", {"n": 3})


def test_embedded_default_loads() -> None:
    s = load_session()
    assert s.name == "default" and s.path is None
    assert s.machine.memory == 1 * GiB and s.machine.cpus == 2
    assert s.cmdline == "page_owner=on debug_pagealloc=on page_poison=on debug_guardpage_minorder=1"
    assert s.workload.faults == {"use_after_free": 1, "bit_flip": 1, "overrun": 1}
    assert s.report.reports is None
    # The same text loads as a session file of its own.
    again = load_session("copy.toml", text=DEFAULT_SESSION.read_text())
    assert again.machine == s.machine and again.workload.faults == s.workload.faults


def test_sourcemap_positions() -> None:
    text = ('[a]\nx = 1\n  [a.b]\n  y.z = 2\nw = { p = 1, q = 2 }\n[[arr]]\nk = 1\n'
            '# [not] a header\n"quoted key" = 3\n')
    sm = SourceMap(text, "f.toml")
    assert sm.where(["a", "x"]) == "f.toml:2:1"
    assert sm.where(["a", "b"]) == "f.toml:3:3"
    assert sm.where(["a", "b", "y", "z"]) == "f.toml:4:3"
    assert sm.where(["a", "b", "w", "q"]) == f"f.toml:5:{text.splitlines()[4].index('q') + 1}"
    assert sm.where(["arr", "k"]) == "f.toml:7:1"
    assert sm.where(["arr", "quoted key"]) == "f.toml:9:1"
    assert sm.where(["a", "nothing", "here"]) == "f.toml:1:1"  # the longest known prefix
    assert sm.where(["zzz"]) == "f.toml"
