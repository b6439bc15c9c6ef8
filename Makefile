# Two entry points: `make run` and `make test`. Both create .venv (Python 3.11) when missing and install the
# project with pinned dependencies, so they work on a fresh machine.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install clean lock chromium rl

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel

$(STAMP): $(BIN)/python setup.py requirements.lock
	$(BIN)/pip install --quiet -c requirements.lock -e '.[test,serve,ui,micro,search]'
	touch $(STAMP)

install: $(STAMP)

# TF-Agents for the dqn family: its runtime needs from the `rl` extra, then tf-agents itself without its metadata's
# pins (typing_extensions==4.5.0 etc. conflict with pydantic 2 / TF 2.21; see RL_REQUIRES in setup.py).
RL_STAMP := $(VENV)/.rl-installed
$(RL_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -c requirements.lock -e '.[rl]'
	$(BIN)/pip install --quiet --no-deps -c requirements.lock tf-agents==0.19.0
	touch $(RL_STAMP)

rl: $(RL_STAMP)

run: $(STAMP) $(RL_STAMP)
	$(BIN)/edgepipe run $(ARGS)

test: $(STAMP) chromium $(RL_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The report test renders report.html in headless Chromium, and the UI's browser tests (tests/ui) drive it through
# chromedriver (Selenium): both installed once where possible (root + apt-get), else those tests are skipped with a
# reason.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium) >/dev/null \
	      || echo "chromium could not be installed: the report rendering test will be skipped"; \
	  else echo "chromium missing (needs root and apt-get): the report rendering test will be skipped"; fi; }
	@command -v chromedriver >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium-driver) >/dev/null \
	      || echo "chromium-driver could not be installed: the UI browser tests will be skipped"; \
	  else echo "chromium-driver missing (needs root and apt-get): the UI browser tests will be skipped"; fi; }

clean:
	rm -rf .edgepipe bundle

lock: $(BIN)/python
	(echo "# Pinned dependency tree the project is tested with (pip freeze of a working .venv; regenerate with 'make lock')."; \
	 $(BIN)/pip freeze --exclude-editable | grep -v '^edgepipe') > requirements.lock
