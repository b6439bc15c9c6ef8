"""Markers for the pipeline tests: ``slow`` marks end-to-end runs of the real pipeline (deselect with -m 'not slow');
``live_sigint`` for the Ctrl-C tests."""
import signal

import pytest


def sigint_as_on_a_terminal() -> None:
    """``preexec_fn`` for a child that must react to Ctrl-C. A process started in the background of a
    non-interactive shell (``cmd &``, nohup, some CI launchers) inherits SIGINT *ignored*, and edgepipe deliberately
    leaves it ignored then; the Ctrl-C tests want the process a user at a terminal has."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def live_sigint():
    """This process handles SIGINT as an interactive Python does (KeyboardInterrupt), for the test's duration."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end run of the default pipeline (over a minute)")
