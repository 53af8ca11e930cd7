# Two commands do all set-up on a fresh clone: `make run` and `make test`.
# The venv is made with $(PYTHON) and re-installed only when a pyproject.toml
# changes, so repeated targets are fast.
#
# A .venv is reused only when it is sound: its python runs, it was made by the
# same interpreter as $(PYTHON) (real path and version), and the last install
# finished (the stamp holds that interpreter's identity, written only after pip
# succeeded). Otherwise it is removed and rebuilt, and the reason is printed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.pageext-installed
DISTS  := . plugins/page_owner plugins/debug_pagealloc plugins/guard
PROJECTS := $(addsuffix /pyproject.toml,$(DISTS))
DISTDIR ?= dist

# An interpreter's identity: the real path of the python a venv of it runs, and its version.
PY_ID_CODE := import os, sys; print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)), sys.version.split()[0])
PY_ID   := $(shell $(PYTHON) -c '$(PY_ID_CODE)' 2>/dev/null)
VENV_ID := $(if $(wildcard $(VENV)),$(shell $(BIN)/python -c '$(PY_ID_CODE)' 2>/dev/null))
STAMP_ID := $(if $(wildcard $(STAMP)),$(shell cat $(STAMP)))

# Why the existing .venv cannot be reused (empty: it can, or there is none).
# With $(PYTHON) not running there is nothing to compare: the venv is kept.
ifneq ($(wildcard $(VENV)),)
ifeq ($(VENV_ID),)
REBUILD_WHY := $(VENV)/bin/python does not run
else ifeq ($(PY_ID),)
REBUILD_WHY :=
else ifneq ($(VENV_ID),$(PY_ID))
REBUILD_WHY := $(VENV) was made by $(VENV_ID), not by $(PYTHON) ($(PY_ID))
else ifneq ($(STAMP_ID),$(VENV_ID))
REBUILD_WHY := the last install into $(VENV) did not finish
endif
endif

.PHONY: run test lint bench install dist clean pictures FORCE

install: $(STAMP)

# FORCE makes the venv be rebuilt when it cannot be reused. The target is
# pyvenv.cfg, a plain file written at creation: bin/python is a symlink whose
# mtime make reads from the old interpreter it points to, so after a rebuild
# it would look older than the stamp and the install would be skipped.
$(VENV)/pyvenv.cfg: $(if $(REBUILD_WHY),FORCE)
	$(if $(REBUILD_WHY),@echo "rebuilding $(VENV): $(REBUILD_WHY)")
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(VENV)/pyvenv.cfg $(PROJECTS) $(if $(REBUILD_WHY),FORCE)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-e '.[dev,pictures,browser,sweep]' $(addprefix -e ,$(filter-out . plugins/page_owner,$(DISTS))) \
		-e 'plugins/page_owner[fleet]'
	$(BIN)/python -c '$(PY_ID_CODE)' > $@.tmp && mv $@.tmp $@

run: $(STAMP)
	$(BIN)/pageext run $(ARGS)

# Lint first: `make test` fails on a finding, as on a failing test.
test: lint
	$(BIN)/python -m pytest $(ARGS)

# Style (ruff) and types (mypy), configured in pyproject.toml; `make lint` runs them alone.
lint: $(STAMP)
	$(BIN)/python -m ruff check .
	$(BIN)/python -m mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(ARGS)

# The pictures of docs/looking-at-a-run.md: the default session's, drawn again (commit what changes).
pictures: $(STAMP)
	$(BIN)/python -m pageext_core.pictures.docs docs/img

# The four wheels (core and three plugins) into $(DISTDIR), built offline from this checkout.
dist: $(STAMP)
	rm -rf $(DISTDIR) build plugins/*/build  # stale build/lib files would end up in the wheels
	$(BIN)/python -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation \
		-w $(DISTDIR) $(DISTS)

clean:
	rm -rf $(VENV) build dist *.egg-info plugins/*/*.egg-info plugins/*/build .pytest_cache .hypothesis
