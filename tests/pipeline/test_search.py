"""Budget search (pipeline/search.py): the declared space rewrites the config, trials are cached runs of the normal
pipeline, the best trial that fits the budget is exported, search.json and the report's Pareto section exist, and a
budget nothing fits is exit 4 with every trial's numbers."""
import json
from pathlib import Path

import pytest

from edgepipe.pipeline import cli
from edgepipe.pipeline.config import load_config
from edgepipe.pipeline.errors import ConfigError
from edgepipe.pipeline.metadata import MetadataStore
from edgepipe.pipeline.search import best, pareto, trial_config

pytest.importorskip("optuna")

CHEAP = ["--set", "training.epochs=1", "--set", "prune.epochs=1", "--set", "search.trials=2",
         "--set", "search.space={width: [0.25, 0.5], window: [16], quantization: [int8_ptq, pruned_int8]}"]
BUDGET = ["--set", "target.flash_kb=64", "--set", "target.ram_kb=32"]


def test_the_declared_space_rewrites_the_users_config():
    config = load_config(None, ["training.epochs=1", "search.trials=3"])
    base = config.model_dump(mode="json", exclude_unset=True)
    trial = trial_config(base, {"depth": 3, "width": 0.5, "window": 16, "sparsity": 0.8, "quantization": "pqat"},
                         "default.yaml", "/tmp/root")
    filters = config.model.filters
    assert trial.model.filters == [round(filters[0] * 0.5), round(filters[1] * 0.5), round(filters[1] // 2 * 0.5)]
    assert trial.window.size == 16 and trial.prune.target_sparsity == 0.8
    assert trial.convert.variants == ["float32", "pqat"] and trial.convert.primary == "pqat"
    assert trial.training.epochs == 1 and trial.search.trials == 0  # the user's keys kept, no search in a trial
    assert trial.pipeline.root == "/tmp/root"
    with pytest.raises(ConfigError, match="window.size=16 must be divisible"):
        trial_config(base, {"depth": 5, "window": 16}, "default.yaml", "/tmp/root")


def test_an_unknown_dimension_is_refused_with_the_known_ones():
    with pytest.raises(ConfigError, match=r"search.space.*unknown dimension 'heads' \(known: depth, width"):
        load_config(None, ["search.space={heads: [1, 2]}"])


def test_pareto_and_best_follow_dominance_and_feasibility():
    costs = {"flash_bytes": 100, "arena_bytes": 10, "latency_ms": 1.0, "energy_uj": 1.0}
    trials = [{"number": 0, "metric": 0.8, "feasible": True, **costs},
              {"number": 1, "metric": 0.7, "feasible": True, **costs},  # worse metric, same costs: dominated
              {"number": 2, "metric": 0.6, "feasible": True, **costs, "flash_bytes": 50},  # cheaper flash
              {"number": 3, "metric": 0.9, "feasible": False, **costs, "flash_bytes": 500}]  # best, does not fit
    pareto(trials)
    assert [t["pareto"] for t in trials] == [True, False, True, True]
    assert best(trials)["number"] == 0
    assert best([t for t in trials if t["number"] == 3]) is None


def _executions(root: Path, run_index: int = 0) -> list[dict]:
    store = MetadataStore(root / "metadata.sqlite")
    return store.executions(store.runs(10)[run_index]["id"])


def test_search_exports_the_best_trial_under_the_budget_and_draws_the_front(tmp_path, capsys):
    root, out = tmp_path / "root", tmp_path / "bundle"
    code = cli.main(["run", "--root", str(root), "--output", str(out), *CHEAP, *BUDGET])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    final = _executions(root)  # the newest run: the best trial again, with the search recorded
    search = next(a for e in final for a in e["artifacts"] if a["type"] == "SearchResults")
    record = json.loads((Path(search["uri"]) / "search.json").read_text())
    trials = record["trials"]
    assert len(trials) == 2 and record["target"]["flash_kb"] == 64 and record["target"]["ram_kb"] == 32
    for t in trials:
        assert set(t["params"]) == {"width", "window", "quantization"}
        assert t["metric"] is not None and t["variant"] == t["params"]["quantization"]
        assert t["fits"] == (t["flash_bytes"] <= 64 * 1024 and t["arena_bytes"] <= 32 * 1024)
        assert t["latency_ms"] > 0 and t["energy_uj"] > 0 and isinstance(t["pareto"], bool)
    chosen = next(t for t in trials if t["best"])
    assert chosen["feasible"] and chosen["number"] == record["best"]
    assert chosen["metric"] == max(t["metric"] for t in trials if t["feasible"])
    bundle = json.loads((out / "bundle.json").read_text())
    assert bundle["primary_variant"] == chosen["variant"]
    assert (out / "model.tflite").stat().st_size == chosen["flash_bytes"]
    report = next(a for e in final for a in e["artifacts"] if a["type"] == "Report")
    page = (Path(report["uri"]) / "report.html").read_text()
    assert '<section id="search"><h2>Budget search</h2>' in page
    assert 'alt="metric against flash, arena, latency and energy"' in page
    second_trial = {e["node"]: e for e in _executions(root, 1)}  # data steps shared through the cache
    assert second_trial["ingest_timeseries"]["cached"] and second_trial["normalize"]["cached"]
    assert f"search: best under the budget is trial {chosen['number']}" in printed.out


def test_a_budget_nothing_fits_is_exit_4_with_each_trials_numbers(tmp_path, capsys):
    code = cli.main(["run", "--root", str(tmp_path / "root"), "--output", str(tmp_path / "bundle"), *CHEAP,
                     "--set", "search.trials=1", "--set", "target.flash_kb=1"])
    err = capsys.readouterr().err
    assert code == 4
    assert "none of 1 trials fits the target custom: trial 0 {" in err and "flash: model" in err and "> 1 KB" in err
    assert not (tmp_path / "bundle").exists()


def test_without_a_quantization_dimension_the_gate_picks_the_trials_variant(tmp_path, capsys):
    """No ``quantization`` in the space: convert.primary stays auto and the trial is judged on the variant the
    export gate would ship among those produced (here the only int8 one), so a budget it misses is still exit 4."""
    args = ["run", "--root", str(tmp_path / "root"), "--set", "training.epochs=1", "--set", "search.trials=1",
            "--set", "search.space={width: [0.25]}", "--set", "convert.variants=[float32, int8_ptq]"]
    assert cli.main([*args, "--output", str(tmp_path / "fits"), *BUDGET]) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "fits" / "bundle.json").read_text())["primary_variant"] == "int8_ptq"
    code = cli.main([*args, "--output", str(tmp_path / "none"), "--set", "target.ram_kb=1"])
    err = capsys.readouterr().err
    assert code == 4 and "none of 1 trials fits" in err and "int8_ptq" in err and "RAM: arena" in err
