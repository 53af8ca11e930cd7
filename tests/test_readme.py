"""The README shows what its commands really print, and names things that exist.

Convention (also for whoever edits the README):

- A ```console block is a terminal transcript and is checked here. Every line
  starting with ``$ `` is a command; the lines after it, up to the next
  command, are exactly what it prints (stdout and stderr, as a terminal shows
  them), and it must exit 0. The blocks run in order, in one temporary
  directory (outside the checkout), so a later block can read what an
  earlier one wrote (``out/default/...``).
- ``.venv/bin/NAME`` is the console script of the environment running the
  tests (``.venv/bin`` there links to the directory of ``sys.executable``);
  ``make run`` is what the Makefile's ``run`` target runs,
  ``.venv/bin/pageext run``.
- The one figure not compared is the wall-clock seconds of the ``time`` line
  that ``pageext run`` prints (``time      0.65 s``): the label and the unit are
  compared, the number is not. Everything else is compared byte for byte.
- A ```sh block lists commands to type, without their output: it is not run.
  Its ``make`` targets must exist, and its ``pip install`` arguments must name
  this repository's distributions (a directory with a pyproject.toml, or a
  wheel of ``make dist``).
"""
from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
import sys
from itertools import zip_longest
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
TIME_LINE = re.compile(r"^(time +)\d+(?:\.\d+)? s$")
BASH = shutil.which("bash")


def fenced(lang: str) -> list[tuple[int, list[str]]]:
    """(README line of the block's first content line, its lines) for each block of ``lang``."""
    text = README.read_text()
    out = []
    for m in FENCE.finditer(text):
        if m.group(1) == lang:
            first = text.count("\n", 0, m.start(2)) + 1
            out.append((first, m.group(2).splitlines()))
    return out


def transcript(first: int, lines: list[str]) -> list[tuple[int, str, list[str]]]:
    """(README line, command, expected output lines) for each ``$ `` command of a console block."""
    assert lines and lines[0].startswith("$ "), \
        f"README.md:{first}: a console block starts with a '$ ' command (or make it a sh block)"
    steps: list[tuple[int, str, list[str]]] = []
    for i, line in enumerate(lines):
        if line.startswith("$ "):
            assert not line.endswith("\\"), f"README.md:{first + i}: continuation lines are not supported"
            steps.append((first + i, line[2:], []))
        else:
            steps[-1][2].append(line)
    return steps


def shell_command(cmd: str) -> str:
    if cmd == "make run" or cmd.startswith("make run "):
        return ".venv/bin/pageext run" + cmd[len("make run"):]
    assert not cmd.startswith("make "), f"{cmd!r}: only `make run` is mapped to what it runs"
    return cmd


def normalise(lines: list[str]) -> list[str]:
    return [TIME_LINE.sub(r"\1<seconds> s", line) for line in lines]


def test_the_convention_normalises_only_the_time_figure() -> None:
    assert normalise(["time      0.65 s", "time      12 s"]) == ["time      <seconds> s"] * 2
    kept = ["timeline  0.65 s", "time      0.65 ms", "reports   0.65 s"]
    assert normalise(kept) == kept


@pytest.mark.skipif(BASH is None, reason="bash is not installed")  # every CI and dev machine here has it
def test_every_console_block_is_what_its_commands_print(tmp_path: Path) -> None:
    blocks = fenced("console")
    assert len(blocks) >= 4, "the README lost its transcripts"
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "bin").symlink_to(Path(sys.executable).parent, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAGEEXT")}  # as a user's shell has it
    problems: list[str] = []
    for n, (first, lines) in enumerate(blocks, 1):
        for line_no, cmd, expected in transcript(first, lines):
            done = subprocess.run([BASH, "-c", shell_command(cmd)], cwd=tmp_path, env=env,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, timeout=600)
            got = done.stdout.splitlines()
            where = f"README.md:{line_no} (console block {n}) `$ {cmd}`"
            if done.returncode != 0:
                problems.append(f"{where} exited {done.returncode}:\n" + done.stdout)
            elif normalise(got) != normalise(expected):
                diff = difflib.unified_diff(normalise(expected), normalise(got), "README", "real output",
                                            lineterm="", n=1)
                first_bad = next(i for i, (a, b) in enumerate(zip_longest(normalise(expected), normalise(got)))
                                 if a != b)
                problems.append(f"{where}: output differs from README.md:{line_no + 1 + first_bad}:\n"
                                + "\n".join(diff))
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def _distributions() -> dict[str, str]:
    """Directory (relative, as the README writes it) -> distribution name, for every pyproject.toml."""
    out = {}
    for p in [ROOT / "pyproject.toml", *sorted(ROOT.glob("plugins/*/pyproject.toml"))]:
        rel = p.parent.relative_to(ROOT).as_posix()
        out["." if rel == "." else f"./{rel}"] = tomllib.loads(p.read_text())["project"]["name"]
    return out


def test_sh_blocks_name_real_make_targets_and_distributions() -> None:
    blocks = fenced("sh")
    assert blocks
    makefile = (ROOT / "Makefile").read_text()
    dists = _distributions()
    wheel_prefixes = {name.replace("-", "_") for name in dists.values()}  # a wheel's file name prefix
    installed: set[str] = set()
    for first, lines in blocks:
        for i, line in enumerate(lines):
            words = line.split("#")[0].split()
            where = f"README.md:{first + i}: {line.strip()}"
            if words[:1] == ["make"]:
                for target in words[1:]:
                    assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"{where}: no such make target"
            if words[:2] == ["pip", "install"]:
                for arg in words[2:]:
                    m = re.fullmatch(r"dist/([a-z_]+)-\*\.whl", arg)
                    if m:
                        assert m.group(1) in wheel_prefixes, f"{where}: make dist builds no {arg}"
                        installed.add(m.group(1))
                    else:
                        assert arg in dists, f"{where}: {arg} is not a directory with a pyproject.toml"
                        installed.add(dists[arg].replace("-", "_"))
            if words[:2] == ["pip", "uninstall"]:
                for arg in words[2:]:
                    if not arg.startswith("-"):
                        assert arg in dists.values(), f"{where}: no distribution {arg}"
    # The section shows every distribution installed from a checkout, and the core from a wheel.
    assert installed == wheel_prefixes
