"""Budget-search trials: a stop (first Ctrl-C or SIGTERM) during a trial gets edgepipe's stop handling -- one
line, the run stops after its current step and ends ``interrupted``, no further trial, no Optuna traceback, exit
143/130 -- and a trial that repeats an earlier parameter set is not run again and is one point on the front."""
import os
import signal
import time
from types import SimpleNamespace

import pytest

from edgepipe.pipeline import display, search
from edgepipe.pipeline.config import load_config
from edgepipe.pipeline.progress import StopRequested

pytest.importorskip("optuna")


class FakeRunner:
    """The LocalRunner's surface run_search uses; ``signum``: sent to this process while the first run runs."""

    def __init__(self, signum=None):
        self.signum, self.calls, self.progress, self._stop = signum, 0, None, False

    def request_stop(self):
        self._stop = True

    @property
    def stop_requested(self):
        return self._stop

    def run(self, pipeline, config):
        self.calls += 1
        if self.signum is not None:
            os.kill(os.getpid(), self.signum)
            deadline = time.time() + 5
            while not self._stop and time.time() < deadline:  # a component's step loop
                time.sleep(0.01)
            raise StopRequested("stop requested")  # what LocalRunner.run raises after ending the run interrupted
        return SimpleNamespace(run_id=f"run{self.calls}", error=None)


@pytest.fixture
def fake_pipeline(monkeypatch):
    import edgepipe.pipeline.templates as templates

    monkeypatch.setattr(templates, "build_pipeline", lambda config: SimpleNamespace(nodes=[]))
    monkeypatch.setattr(search, "measure", lambda config, pipeline, result: {
        "variant": "int8_ptq", "metric": 0.9, "flash_bytes": 100, "arena_bytes": 10, "latency_ms": 1.0,
        "energy_uj": 1.0, "fits": True, "exported": True, "feasible": True, "reasons": []})


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_during_a_trial_stops_the_search_with_one_line(fake_pipeline, capfd, signum, live_sigint):
    config = load_config(None, ["search.trials=3", "search.space={width: [0.25, 0.5, 1.0]}"])
    runner = FakeRunner(signum)
    before = signal.getsignal(signum)
    with pytest.raises(KeyboardInterrupt):
        search.run_search(config, runner)
    err = capfd.readouterr().err
    name = "SIGTERM: " if signum == signal.SIGTERM else ""
    assert f"edgepipe: {name}stopping after the current step" in err
    assert "Traceback" not in err and "failed with parameters" not in err
    assert runner.calls == 1  # no trial after the stop
    assert display.interrupt_exit_code() == 128 + signum
    assert signal.getsignal(signum) is before  # the handler is the search's only


def test_a_repeated_parameter_set_is_not_run_again_and_counts_once_on_the_front(fake_pipeline):
    config = load_config(None, ["search.trials=3", "search.space={width: [0.5]}"])
    runner = FakeRunner()
    record, _ = search.run_search(config, runner)
    trials = record["trials"]
    assert runner.calls == 1
    assert [t.get("repeat_of") for t in trials] == [None, 0, 0]
    assert all(t["metric"] == 0.9 for t in trials)
    assert [t["pareto"] for t in trials] == [True, False, False] and record["best"] == 0
