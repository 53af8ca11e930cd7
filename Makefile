# Two commands do all set-up on a fresh clone: `make run` and `make test`.
# The venv is made with the running python3 and re-installed only when a
# pyproject.toml changes, so repeated targets are fast.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.pageext-installed
DISTS  := . plugins/page_owner plugins/debug_pagealloc plugins/guard
PROJECTS := $(addsuffix /pyproject.toml,$(DISTS))

.PHONY: run test bench install clean

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python $(PROJECTS)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-e '.[dev]' $(addprefix -e ,$(filter-out .,$(DISTS)))
	touch $@

run: $(STAMP)
	$(BIN)/pageext run $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info plugins/*/*.egg-info .pytest_cache .hypothesis
