"""page_owner_sort's command line when things go wrong: exit codes, messages, files left alone.

Exit status 1 for every error (as the kernel tool), 130 for Ctrl-C; the
usage only for command-line mistakes; messages name paths as the user typed
them; the output is never half-written.
"""
from __future__ import annotations

import gzip
import io
import os
import signal
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pageext_page_owner.page_owner_sort as pos
import pytest
from pageext_page_owner.page_owner_sort import cli, main

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "page_owner"
DUMP = FIXTURES / "four_eras.txt"
SCRIPT = Path(sys.executable).parent / "page_owner_sort"
USAGE = "Usage: page_owner_sort [OPTIONS] <input> <output>"

# every mode goes through the same loading and writing: each error is checked in all of them
MODES = [
    pytest.param([], id="text"),
    pytest.param(["--format=json"], id="json"),
    pytest.param(["--format=csv"], id="csv"),
    pytest.param(["--collapsed"], id="collapsed"),
    pytest.param(["-d"], id="debug"),
    pytest.param(["--jobs=2"], id="jobs"),
    pytest.param(["--cull=st,pid", "-m"], id="cull"),
]


def run(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def files(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


# ---- --version


def test_version(capsys):
    rc, out, err = run(capsys, "--version")
    assert rc == 0 and err == ""
    assert out == f"page_owner_sort (pageext-page-owner {version('pageext-page-owner')})\n"


def test_version_from_the_console_script():
    proc = subprocess.run([str(SCRIPT), "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert proc.stdout == f"page_owner_sort (pageext-page-owner {version('pageext-page-owner')})\n"


# ---- the output must not be the input


def test_output_that_is_the_input_is_refused(capsys, tmp_path, monkeypatch):
    src = tmp_path / "dump.txt"
    src.write_bytes(DUMP.read_bytes())
    monkeypatch.chdir(tmp_path)
    (tmp_path / "link.txt").symlink_to(src)
    os.link(src, tmp_path / "hard.txt")
    for out in ("dump.txt", "./dump.txt", str(src), "link.txt", "hard.txt"):
        rc, stdout, stderr = run(capsys, "dump.txt", out)
        assert rc == 1, out
        assert stderr.startswith(USAGE)  # two paths that clash: a command-line mistake
        assert f"page_owner_sort: error: the output '{out}' is the input 'dump.txt'" in stderr
        assert "give another output path" in stderr
    assert src.read_bytes() == DUMP.read_bytes()
    assert files(tmp_path) == ["dump.txt", "hard.txt", "link.txt"]


def test_diff_output_that_is_one_of_the_inputs_is_refused(capsys, tmp_path):
    old, new = tmp_path / "old.txt", tmp_path / "new.txt"
    old.write_bytes(DUMP.read_bytes())
    new.write_bytes(DUMP.read_bytes())
    for out in (old, new):
        rc, _, stderr = run(capsys, "--diff", old, new, out)
        assert rc == 1 and f"the output '{out}' is the input '{out}'" in stderr
    assert old.read_bytes() == new.read_bytes() == DUMP.read_bytes()


def test_stdin_and_stdout_are_not_the_same_file(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(DUMP.read_bytes())))
    rc, out, _ = run(capsys, "-", "-")
    assert rc == 0 and out.count(" times, ") == 4


# ---- Ctrl-C


def test_ctrl_c_exits_130_without_traceback_or_partial_output(tmp_path):
    # The tool reads a dump from a pipe that stays open; once its temporary output file
    # exists it is inside the reading loop; SIGINT there must leave no trace.
    out = tmp_path / "sorted.txt"
    out.write_text("previous result\n")
    proc = subprocess.Popen([str(SCRIPT), "-", str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.stdin.write(DUMP.read_bytes())
        proc.stdin.flush()
        deadline = time.monotonic() + 120  # a guard against hanging, not a speed check
        while not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert b"Traceback" not in stderr
    assert stderr.strip().endswith(b"page_owner_sort: interrupted")
    assert out.read_text() == "previous result\n"
    assert files(tmp_path) == ["sorted.txt"]


@pytest.mark.parametrize("mode", MODES)
def test_ctrl_c_in_every_mode(capsys, tmp_path, monkeypatch, mode):
    def interrupted(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pos.Aggregator, "feed", interrupted)
    out = tmp_path / "o.txt"
    out.write_text("keep\n")
    for args in (mode + [DUMP, out], ["--diff"] + [a for a in mode if a != "-m"] + [DUMP, DUMP, out]):
        if "--diff" in args and "--cull=st,pid" in args:
            continue
        rc, _, err = run(capsys, *args)
        assert rc == 130 and err.endswith("page_owner_sort: interrupted\n") and "Traceback" not in err
        assert out.read_text() == "keep\n" and files(tmp_path) == ["o.txt"]


# ---- an input with text but no record


NOT_A_DUMP = "Linux version 6.8.0 (build@host) #1 SMP\nsomething else\n\n"


@pytest.mark.parametrize("mode", MODES)
def test_no_records_is_an_error(capsys, tmp_path, mode):
    src = tmp_path / "dmesg.txt"
    src.write_text(NOT_A_DUMP)
    out = tmp_path / "o.txt"
    rc, stdout, stderr = run(capsys, *mode, src, out)
    assert rc == 1
    last = stderr.splitlines()[-1]
    assert last.startswith(f"page_owner_sort: no page_owner records found in {src} (first unusable block: {src}:1: ")
    assert "Usage" not in stderr and "loaded" not in stdout
    assert not out.exists() and files(tmp_path) == ["dmesg.txt"]


def test_no_records_names_the_input_of_a_diff_and_stdin(capsys, tmp_path, monkeypatch):
    src = tmp_path / "dmesg.txt"
    src.write_text(NOT_A_DUMP)
    rc, _, err = run(capsys, "--diff", DUMP, src, tmp_path / "d.txt")
    assert rc == 1 and f"no page_owner records found in {src} " in err
    rc, _, err = run(capsys, "--diff", src, DUMP, tmp_path / "d.txt")
    assert rc == 1 and f"no page_owner records found in {src} " in err
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(NOT_A_DUMP.encode())))
    rc, _, err = run(capsys, "-", tmp_path / "o.txt")
    assert rc == 1 and err.startswith("page_owner_sort: no page_owner records found in <stdin> (first unusable block: <stdin>:1: ")


def test_a_lone_record_without_empty_line_after_it_says_how_to_fix_it(capsys, tmp_path):
    src = tmp_path / "one.txt"
    src.write_bytes(DUMP.read_bytes().split(b"\n\n")[0] + b"\n")  # no empty line: the kernel tool drops it too
    rc, _, err = run(capsys, src, tmp_path / "o.txt")
    assert rc == 1 and "no page_owner records found" in err and "append an empty line" in err


def test_empty_or_filtered_inputs_are_not_errors(capsys, tmp_path):
    for name, data in (("empty.txt", b""), ("blank.txt", b"\n\n\n")):
        src = tmp_path / name
        src.write_bytes(data)
        out = tmp_path / ("out-" + name)
        rc, _, err = run(capsys, src, out)
        assert rc == 0 and err == "" and out.read_text() == ""
    out = tmp_path / "none-selected.txt"
    rc, stdout, err = run(capsys, "--pid=99999", DUMP, out)  # records, but none selected
    assert rc == 0 and stdout.startswith("loaded 0\n") and out.read_text() == ""


def test_no_records_from_the_console_script(tmp_path):
    src = tmp_path / "dmesg.txt"
    src.write_text(NOT_A_DUMP)
    proc = subprocess.run([str(SCRIPT), str(src), str(tmp_path / "o.txt")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"page_owner_sort: no page_owner records found in {src} ")
    assert proc.stderr.count("\n") == 1 and proc.stdout == ""


# ---- usage only for command-line mistakes; paths as the user gave them


@pytest.mark.parametrize(
    "args",
    [["-x", "IN", "OUT"], ["IN"], ["IN", "OUT", "more"], ["--sort=bogus", "IN", "OUT"], ["-m", "-t", "IN", "OUT"], ["--diff", "IN"]],
)
def test_command_line_mistakes_print_the_usage(capsys, args):
    rc, _, err = run(capsys, *[str(DUMP) if a == "IN" else a for a in args])
    assert rc == 1 and err.startswith(USAGE) and "page_owner_sort: error: " in err


@pytest.mark.parametrize("mode", MODES)
def test_file_problems_do_not_print_the_usage_and_name_the_given_path(capsys, tmp_path, monkeypatch, mode):
    monkeypatch.chdir(tmp_path)
    Path("dir").mkdir()
    Path("dump.txt").write_bytes(DUMP.read_bytes())
    Path("cut.gz").write_bytes(gzip.compress(DUMP.read_bytes() * 20)[:200])
    cases = [
        (["nope.txt", "o.txt"], "cannot open input 'nope.txt': no such file"),
        (["dir", "o.txt"], "cannot open input 'dir': it is a directory"),
        (["dump.txt", "dir"], "cannot write output 'dir': it is a directory"),
        (["dump.txt", "sub/o.txt"], "cannot write output 'sub/o.txt': directory 'sub' does not exist"),
        (["cut.gz", "o.txt"], "cannot read cut.gz: "),
    ]
    for args, message in cases:
        rc, _, err = run(capsys, *mode, *args)
        assert rc == 1, args
        assert "Usage" not in err, args
        assert f"page_owner_sort: error: {message}" in err, (args, err)
        assert str(tmp_path) not in err, args  # not resolved to an absolute path
    assert files(tmp_path) == ["cut.gz", "dir", "dump.txt"]


def test_a_damaged_compressed_input_reads_the_same_error_with_a_decompressing_process(capsys, tmp_path, monkeypatch):
    # --jobs=2 decompresses in a child process; its error must read as the one-process one
    monkeypatch.chdir(tmp_path)
    Path("cut.gz").write_bytes(gzip.compress(DUMP.read_bytes() * 20)[:200])
    errs = [run(capsys, f"--jobs={j}", "cut.gz", "o.txt")[2] for j in (1, 2)]
    assert errs[0] == errs[1]
    assert errs[0].startswith("page_owner_sort: error: cannot read cut.gz: Compressed file ended")
    assert files(tmp_path) == ["cut.gz"]


def test_write_errors_name_the_output_not_the_temp_file(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real_replace = os.replace

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", src)

    monkeypatch.setattr(os, "replace", refuse)
    rc, _, err = run(capsys, DUMP, "o.txt")
    assert rc == 1 and err == "page_owner_sort: error: cannot write o.txt: Permission denied\n"
    assert files(tmp_path) == []  # the temporary file is gone
    monkeypatch.setattr(os, "replace", real_replace)

    def full(rep):
        yield b"partial"
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli, "render_text", full)
    Path("o.txt").write_text("old\n")
    rc, _, err = run(capsys, DUMP, "o.txt")
    assert rc == 1 and err == "page_owner_sort: error: cannot write o.txt: No space left on device\n"
    assert Path("o.txt").read_text() == "old\n" and files(tmp_path) == ["o.txt"]


PARALLEL_SCRIPT = """
import os, sys, time
from pageext_page_owner.page_owner_sort import main, parallel, parse

parallel.PARALLEL_MIN_BYTES = 0  # count even the small fixture in worker processes


def stuck(args):  # a worker busy for long enough to be interrupted
    open(os.path.join(sys.argv[3], "worker.%d" % os.getpid()), "w").close()
    time.sleep(600)


parse._count_part = stuck
sys.exit(main(["--jobs=2", sys.argv[1], sys.argv[2]]))
"""


def test_ctrl_c_with_worker_processes(tmp_path):
    # Ctrl-C at a terminal goes to the whole process group: the workers must not print tracebacks.
    marks = tmp_path / "marks"
    marks.mkdir()
    out = tmp_path / "sorted.txt"
    proc = subprocess.Popen(
        [sys.executable, "-c", PARALLEL_SCRIPT, str(DUMP), str(out), str(marks)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120  # a guard against hanging, not a speed check
        while len(list(marks.iterdir())) < 2:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130
    assert b"Traceback" not in stderr and stderr.strip().endswith(b"page_owner_sort: interrupted")
    assert files(tmp_path) == ["marks"]
