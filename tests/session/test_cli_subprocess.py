"""The installed console script as a real process: run, plugins, errors, --version,
determinism across processes, and Ctrl-C (SIGINT) during a long workload.
"""
from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

from sessionsupport import (
    PAGEEXT,
    PLUGINS,
    TINY,
    clean_env,
    load_summary,
    run_pageext,
    tree,
    without_timing,
    write_session,
)


def test_console_script_is_installed() -> None:
    assert PAGEEXT.is_file()


def test_run(tmp_path: Path) -> None:
    p = write_session(tmp_path, TINY)
    r = run_pageext(["run", p, "--out", tmp_path / "out"])
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # no progress bar on a pipe, no warning
    assert r.stdout.startswith("session   tiny\n")
    assert sorted(tree(tmp_path / "out")) == ["buddyinfo", "dmesg.log", "index.html", "meminfo", "summary.json"]
    r = run_pageext(["run", p, "--out", tmp_path / "out2", "--json"])
    assert without_timing(json.loads(r.stdout)) == without_timing(load_summary(tmp_path / "out2"))


def test_run_default_output_directory_is_relative_to_cwd(tmp_path: Path) -> None:
    write_session(tmp_path, TINY, "exp.toml")
    r = run_pageext(["run", "exp.toml", "-q"], cwd=tmp_path)
    assert (r.returncode, r.stdout) == (0, "")
    assert load_summary(tmp_path / "out" / "tiny")["session"]["file"] == "exp.toml"


def test_configuration_error(tmp_path: Path) -> None:
    p = write_session(tmp_path, '[machine]\nmemory = "64MiB"\n\n[workload]\noperatons = 5\n')
    r = run_pageext(["run", p, "--out", tmp_path / "out"])
    assert r.returncode == 2
    assert r.stderr == f"pageext: error: {p}:5:1: [workload] operatons: unknown key; did you mean 'operations'?\n"
    assert r.stdout == "" and not (tmp_path / "out").exists()


def test_bad_hotplug_size_is_a_configuration_error_not_a_crash(tmp_path: Path) -> None:
    p = write_session(tmp_path, '[machine]\nmemory = "128MiB"\nhotplug = "-128MiB"\n')
    r = run_pageext(["run", p, "--out", tmp_path / "out"])
    assert (r.returncode, r.stderr) == (2, f"pageext: error: {p}:3:1: [machine] hotplug: size '-128MiB' is negative\n")


def test_plugins() -> None:
    r = run_pageext(["plugins"])
    assert r.returncode == 0, r.stderr
    assert [line.split()[0] for line in r.stdout.splitlines() if not line.startswith(" ")][:3] == list(PLUGINS)
    r = run_pageext(["plugins", "--json", "--boot", "page_owner=on"])
    d = json.loads(r.stdout)
    assert [(p["name"], p["enabled"]) for p in d["plugins"]] == [("debug_pagealloc", False), ("guard", False),
                                                                ("page_owner", True)]


def test_version() -> None:
    r = run_pageext(["--version"])
    assert r.returncode == 0
    assert re.match(r"pageext-core \d+\.\d+\.\d+", r.stdout)
    for name in PLUGINS:
        assert re.search(rf"^  {name}: pageext-{name.replace('_', '-')} \d+\.\d+\.\d+", r.stdout, re.M)


def test_two_processes_give_identical_bytes(tmp_path: Path) -> None:
    text = TINY.replace("[plugins]\nautoload = false\n", '[boot]\ncmdline = "page_owner=on"\n').replace(
        '["buddyinfo", "meminfo"]', '["all"]').replace("operations = 400", "operations = 2000")
    p = write_session(tmp_path, text)
    outs = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        r = run_pageext(["run", p, "--out", tmp_path / name, "-q", "--seed", seed])
        assert r.returncode == 0, r.stderr
        files = tree(tmp_path / name)
        outs.append((files, without_timing(json.loads(files.pop("summary.json")))))
    assert outs[0] == outs[1]
    assert {"page_owner", "page_owner_leaks", "page_owner_stacks/show_stacks", "dmesg.log"} <= set(outs[0][0])
    assert outs[0][0]["page_owner"] != outs[2][0]["page_owner"]
    assert outs[0][1] != outs[2][1]


def _reset_sigint() -> None:  # the child must see Ctrl-C even if this process was started ignoring it
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_writes_the_state_reached(tmp_path: Path) -> None:
    text = TINY.replace("operations = 400", "operations = 5000000")
    p = write_session(tmp_path, text)
    out = tmp_path / "out"
    proc = subprocess.Popen([str(PAGEEXT), "run", str(p), "--out", str(out), "-q", "--dmesg"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(),
                            preexec_fn=_reset_sigint)
    try:
        # --dmesg echoes the kernel log as it happens; this is the last line of boot.
        deadline = time.monotonic() + 60
        seen = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            seen.append(line)
            if "page_ext: no client is enabled" in line or not line:
                break
        assert "page_ext: no client is enabled" in seen[-1], seen
        time.sleep(1.0)  # well into the workload (5M operations take minutes)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert stdout == ""
    m = re.search(r"^pageext: interrupted after (\d+) operations; reports of the state reached are in (.+)$",
                  stderr, re.M)
    assert m and m.group(2) == str(out), stderr
    done = int(m.group(1))
    s = load_summary(out)
    w = s["workload"]
    assert w["interrupted"] is True and w["operations"] == done
    assert 0 < done < 5_000_000 and done % 1024 == 1  # stopped between two operations
    assert w["allocations"] + w["frees"] == done
    assert sorted(tree(out)) == ["buddyinfo", "dmesg.log", "index.html", "meminfo", "summary.json"]  # no temp file
    assert "pageext: workload interrupted; reports show the state reached" in (out / "dmesg.log").read_text()


def test_the_cli_module_loads_no_simulator_until_a_command_needs_it() -> None:
    # --help, --version and new-plugin must not pay for numpy and the allocator.
    code = ("import sys, pageext_core.cli as c, pageext_core.session.runner as r; "
            "print(c.EXIT_USAGE == r.EXIT_USAGE == 2)")
    r = subprocess.run([str(PAGEEXT.with_name("python")), "-c", "import sys, pageext_core.cli; "
                        "print(sorted(m for m in ('numpy', 'pluggy', 'pageext_core.page_ext') if m in sys.modules))"],
                       capture_output=True, text=True, env=clean_env(), check=True)
    assert r.stdout == "[]\n"
    r = subprocess.run([str(PAGEEXT.with_name("python")), "-c", code], capture_output=True, text=True,
                       env=clean_env(), check=True)
    assert r.stdout == "True\n"
