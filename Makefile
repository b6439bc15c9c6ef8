# Two entry points: `make run` and `make test`. Both create .venv (Python 3.11) when missing and install the
# project with pinned dependencies, so they work on a fresh machine.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install clean lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel

$(STAMP): $(BIN)/python setup.py requirements.lock
	$(BIN)/pip install --quiet -c requirements.lock -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/edgepipe run $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf .edgepipe bundle

lock: $(BIN)/python
	(echo "# Pinned dependency tree the project is tested with (pip freeze of a working .venv; regenerate with 'make lock')."; \
	 $(BIN)/pip freeze --exclude-editable | grep -v '^edgepipe') > requirements.lock
