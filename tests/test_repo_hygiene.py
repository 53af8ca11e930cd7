"""No tracked file holds an absolute path into somebody's checkout or home.

Such a path makes the suite depend on where it was cloned: a test reading
fixtures from another directory fails on a fresh clone, and one running another
checkout's console script silently tests that checkout's code. The files
checked are ``git ls-files`` (every file of the tree, minus build products,
where git is not available); binary files are skipped.

The patterns are spelled with character classes (``[k]``) so that this file,
which is checked like every other, does not match them itself.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Directories that hold build products or caches, not sources (used without git only).
NOT_SOURCES = {".git", ".venv", "venv", "build", "dist", "out", "__pycache__", ".pytest_cache", ".hypothesis"}

# Not after a word character, a dot or a slash: "https://example.org/work/x" is a URL, not a path.
_START = r"(?<![\w.~/-])"
ABSOLUTE = re.compile(_START + "(?:" + "|".join([
    r"/wor[k]/",                       # the machine this project is developed on
    r"/hom[e]/[A-Za-z0-9_.-]+/",      # a user's home on Linux
    r"/User[s]/[A-Za-z0-9_. -]+/",    # ... on macOS
    r"/roo[t]/",                       # root's home (pyenv, caches)
    r"/tm[p]/pytest-",                 # pytest's temporary directories
    r"/private/va[r]/folders/",        # macOS temporary directories
]) + ")")


def tracked_files() -> list[Path]:
    git = shutil.which("git")
    if git and (ROOT / ".git").exists():
        done = subprocess.run([git, "ls-files", "-z"], cwd=ROOT, capture_output=True, timeout=60)
        if done.returncode == 0:
            return [ROOT / name for name in done.stdout.decode().split("\0") if name]
    return [p for p in ROOT.rglob("*") if p.is_file()
            and not (NOT_SOURCES & set(p.relative_to(ROOT).parts))
            and not any(part.endswith(".egg-info") for part in p.relative_to(ROOT).parts)]


def offending_lines(path: Path) -> list[str]:
    """``path:line: text`` for each line holding an absolute path (none for binary files)."""
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return []
    text = data.decode("utf-8", errors="replace")
    rel = path.relative_to(ROOT)
    return [f"{rel}:{n}: {line.strip()[:160]}" for n, line in enumerate(text.splitlines(), 1)
            if ABSOLUTE.search(line)]


def test_the_patterns_catch_checkout_paths_and_spare_urls() -> None:
    caught = ["/" + "work/main/.venv/bin/page_owner_sort", 'Path("/' + 'work/shared/fixtures")',
              "/" + "home/alice/src/pageext", "/" + "root/.pyenv/versions/3.11.7",
              "/" + "Users/bob/pageext/tests", "/" + "tmp/pytest-of-root/pytest-3/x"]
    spared = ["https://example.org/work/x", "tools/mm/page_owner_sort.c", "/sys/kernel/debug/page_owner",
              "/proc/self/statm", "src/home/page.txt", "~/work/pageext", "/tmp/out"]
    assert [s for s in caught if not ABSOLUTE.search(s)] == []
    assert [s for s in spared if ABSOLUTE.search(s)] == []


def test_the_file_list_covers_the_repository() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in tracked_files()}
    assert {"Makefile", "README.md", "tests/test_repo_hygiene.py",
            "tests/fixtures/page_owner/current.txt"} <= names
    assert not any(n.startswith(".venv/") for n in names)


def test_no_tracked_file_holds_an_absolute_path_into_a_checkout() -> None:
    bad = [line for p in tracked_files() if p.is_file() for line in offending_lines(p)]
    assert bad == [], "absolute paths in tracked files (make them relative to the repository, or " \
                      "find programs next to sys.executable):\n" + "\n".join(bad)
