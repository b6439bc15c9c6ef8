"""``edgepipe run --output DIR`` checks DIR before anything runs.

``--output u`` used to delete whatever ``u`` held (exit 0), and ``--output`` equal to the pipeline root deleted the
metadata store and every artifact. Now only a missing or empty directory or an earlier bundle is replaced, and the
output and the root may not overlap; otherwise exit 2 with one line, before the pipeline is even built.
"""
import json
from types import SimpleNamespace

import pytest

from edgepipe.pipeline import cli


def run(capsys, *args: str) -> tuple[int, str]:
    code = cli.main(["run", *args])
    return code, capsys.readouterr().err


@pytest.fixture
def no_pipeline(monkeypatch):
    """Building the pipeline means the output check let the run through: make that visible and cheap."""
    import edgepipe.pipeline.templates as templates

    def refuse(config):
        raise AssertionError("the pipeline was built although --output should have been refused")

    monkeypatch.setattr(templates, "build_pipeline", refuse)


def test_a_folder_with_user_files_is_refused_before_the_run(tmp_path, capsys, no_pipeline):
    user = tmp_path / "u"
    (user / "sub").mkdir(parents=True)
    (user / "notes.txt").write_text("mine")
    code, err = run(capsys, "--root", str(tmp_path / "root"), "--output", str(user))
    assert code == 2
    assert err == (f"edgepipe: error: --output {user} holds files that are not an edgepipe bundle (notes.txt, sub/); "
                   "refusing to replace them: choose a new or empty directory\n")
    assert (user / "notes.txt").read_text() == "mine" and (user / "sub").is_dir()
    assert not (tmp_path / "root").exists()  # nothing ran


@pytest.mark.parametrize("output, root", [("r", "r"), ("r/bundle", "r"), ("o", "o/root"), ("r/./", "r")])
def test_output_and_root_may_not_overlap(tmp_path, capsys, no_pipeline, output, root):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "metadata.sqlite").write_text("precious")
    code, err = run(capsys, "--root", str(tmp_path / root), "--output", str(tmp_path / output))
    assert code == 2 and err.count("\n") == 1
    assert "overlap; they must be separate directories, neither inside the other" in err
    assert (tmp_path / "r" / "metadata.sqlite").read_text() == "precious"


def test_a_file_as_output_is_refused(tmp_path, capsys, no_pipeline):
    (tmp_path / "model.bin").write_text("x")
    code, err = run(capsys, "--root", str(tmp_path / "root"), "--output", str(tmp_path / "model.bin"))
    assert code == 2 and "model.bin exists and is not a directory" in err


@pytest.mark.parametrize("prepare", [
    lambda p: None,
    lambda p: p.mkdir(),
    lambda p: (p.mkdir(), (p / "bundle.json").write_text(json.dumps({"schema_version": 1, "task": "policy"}))),
])
def test_new_empty_or_bundle_outputs_go_on_to_build_the_pipeline(tmp_path, capsys, monkeypatch, prepare):
    import edgepipe.pipeline.templates as templates

    built = []

    def stop(config):
        built.append(config)
        raise KeyboardInterrupt

    monkeypatch.setattr(templates, "build_pipeline", stop)
    prepare(tmp_path / "out")
    code, _ = run(capsys, "--root", str(tmp_path / "root"), "--output", str(tmp_path / "out"))
    assert code == 130 and len(built) == 1  # got past the check, stopped right after


def test_progress_shows_why_a_cache_hit_is_not_reused(capsys):
    printer = cli.ProgressPrinter(3)
    node = SimpleNamespace(name="convert_tflite")
    printer("start", node, {"reason": "cached result of convert_tflite is corrupt (tflite: file a.tflite changed): "
                                      "re-executing"})
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("cached result of convert_tflite is corrupt (tflite: file a.tflite changed): re-executing")
    assert out[1].endswith("running ...")


def test_run_summary_prints_missing_metrics_as_na_and_why_the_primary_ships(tmp_path, capsys):
    """No labels (or no positives in a split) leave precision/recall None: the summary said TypeError after the
    export, before the bundle reached --output."""
    import json

    from edgepipe.pipeline.display import print_summary

    (tmp_path / "bundle.json").write_text(json.dumps({
        "primary_variant": "int8_qat", "primary_reason": "'pqat' (agreement 0.84 < 0.98) failed the export bounds",
        "metrics": {"per_model": {"int8": {"all": {"precision": None, "recall": None, "f1": None}},
                                  "keras": {"all": {"precision": 0.5, "recall": 1.0, "f1": 0.6667}}}}}))
    print_summary(tmp_path)
    out = capsys.readouterr().out
    assert "int8 (int8_qat, model.tflite) precision n/a  recall n/a  F1 n/a" in out
    assert "keras    precision 0.500  recall 1.000  F1 0.667" in out
    assert "model.tflite is 'int8_qat': 'pqat' (agreement 0.84 < 0.98) failed" in out


def test_the_run_summary_names_the_splits_pooled_and_no_labels_leave_precision_na(tmp_path, capsys):
    """Without a test split "all" pools eval alone (the summary said eval+test); without a labelled anomaly every
    flag is false, so precision 0.000 said nothing: n/a like recall and F1."""
    from edgepipe.pipeline.display import print_summary

    unlabelled = {"precision": 0.0, "recall": None, "f1": None, "anomalous": 0, "flagged": 3}
    (tmp_path / "bundle.json").write_text(json.dumps({"metrics": {"per_model": {
        "keras": {"all": unlabelled, "eval": unlabelled},
        "float32": {"all": {"precision": 0.25, "recall": 1.0, "f1": 0.4}, "eval": {}, "test": {}}}}}))
    print_summary(tmp_path)
    out = capsys.readouterr().out
    assert "keras    precision n/a  recall n/a  F1 n/a  (eval windows)" in out
    assert "float32  precision 0.250  recall 1.000  F1 0.400  (eval+test windows)" in out


@pytest.mark.parametrize("command, message", [
    (["run", "--output", ""], "--output is empty; give the directory to write the bundle to"),
    (["run", "--output", "  "], "--output is empty; give the directory to write the bundle to"),
    (["compile", "--output", ""], "--output is empty; give the YAML file to write"),
])
def test_an_empty_output_is_refused_by_name(tmp_path, capsys, no_pipeline, command, message):
    """Path("") is the current directory: run refused it as "--output  holds files ...", compile crashed (exit 1)."""
    code = cli.main([*command, "--root", str(tmp_path / "root")] if command[0] == "run" else command)
    assert code == 2 and capsys.readouterr().err == f"edgepipe: error: {message}\n"
    assert not (tmp_path / "root").exists()


def test_the_run_summary_says_how_a_retrain_was_blessed(tmp_path, capsys):
    """A retrain's blessing was only in bundle.json, blessing.json and the report: one whose baseline could not judge
    the new data ships unjudged, so the terminal says so; a compared one gives both metrics."""
    from edgepipe.pipeline.display import print_summary

    not_compared = ("'value' centre 548.7 baseline scales, scale x245 (bounds: 10 scales, 10x): the baseline cannot "
                    "judge this data, not compared")
    for blessing, line in [
            ({"metric_name": "f1", "candidate_metric": 0.0, "baseline_metric": 0.4654, "baseline_bundle": "/b",
              "reason": not_compared}, f"retrain: blessed, f1 0.000 vs the baseline's 0.465: {not_compared}"),
            ({"metric_name": "f1", "candidate_metric": 0.8, "baseline_metric": None, "baseline_bundle": None,
              "reason": "no earlier exported bundle of this pipeline: the first export"},
             "retrain: blessed, no earlier exported bundle of this pipeline: the first export")]:
        (tmp_path / "bundle.json").write_text(json.dumps({"blessing": blessing}))
        print_summary(tmp_path)
        assert line in capsys.readouterr().out


def test_the_run_summary_counts_rejects_in_the_sources_unit(tmp_path, capsys):
    """An image folder's rejects were "1 of 61 input rows rejected": the summary takes the source's own noun."""
    from types import SimpleNamespace

    from edgepipe.pipeline.display import print_rejects

    def rejects(props):
        record = SimpleNamespace(type="Rejects", uri=str(tmp_path), open=lambda: SimpleNamespace(properties=props))
        return SimpleNamespace(outputs={"rejects": record})

    result = SimpleNamespace(nodes={"ingest_images": rejects({"count": 1, "rows_read": 61, "unit": "images"}),
                                    "ingest_csv": rejects({"count": 0, "rows_read": 300})})
    print_rejects(result)
    out = capsys.readouterr().out.splitlines()
    assert out == [f"  ingest_images: 1 of 61 input images rejected (reasons in {tmp_path}/rejects.jsonl)",
                   "  ingest_csv: 0 of 300 input rows rejected"]


def test_the_run_summary_names_the_validation_anomalies(tmp_path, capsys):
    """T9: validation.json's anomalies were silent in the run summary; these are the QA's taxi leak run's own."""
    from edgepipe.pipeline.display import print_validation

    anomalies = [
        {"split": "eval", "feature": "company", "kind": "new_category",
         "detail": "11 unseen values (16.41% of values), e.g. 'LEAKCO Cab'", "measure": {"unseen": 11, "share": 0.1641}},
        {"split": "eval", "feature": "fare", "kind": "out_of_range",
         "detail": "[0, 99999] outside training range [0, 175.05]"},
        {"split": "test", "feature": "fare", "kind": "mean_drift",
         "detail": "mean 1324.12 vs train 12.7202 (116.39 train std > 1.0)", "measure": {"drift": 116.39}},
        {"split": "test", "feature": "company", "kind": "missing_values", "detail": "missing 52.50% (train 34.00%)",
         "measure": {"fraction": 0.525}}]
    (tmp_path / "validation.json").write_text(json.dumps({"anomalies": anomalies, "checked": ["eval", "test"]}))
    (tmp_path / "clean").mkdir()
    (tmp_path / "clean" / "validation.json").write_text(json.dumps({"anomalies": [], "checked": ["eval"]}))
    record = SimpleNamespace(type="ValidationReport", uri=str(tmp_path))
    clean = SimpleNamespace(type="ValidationReport", uri=str(tmp_path / "clean"))
    print_validation(SimpleNamespace(nodes={"validate_examples": SimpleNamespace(outputs={"report": record}),
                                            "other": SimpleNamespace(outputs={"report": clean})}))
    assert capsys.readouterr().out.splitlines() == [
        "  validation: 4 anomalies in eval/test (fare mean drift 116 train std in test, company 11 new categories "
        f"(16.41%) in eval, company 52.50% missing in test, ...); see {tmp_path}/validation.json"]


def test_the_summary_reads_the_numbers_validation_records_not_its_wording(tmp_path, capsys):
    """check_split records each finding's numbers (``measure``) and the summary line is made from them, so rewording
    a ``detail`` cannot silently drop the numbers from the summary; an infinite drift (train std 0) is strict JSON."""
    from edgepipe.components.data.schema import check_split
    from edgepipe.pipeline.display import print_validation

    schema = {"features": {
        "fare": {"type": "float", "min": 0.0, "max": 175.05, "mean": 12.72, "std": 11.13, "missing_fraction": 0.0},
        "tolls": {"type": "float", "min": 0.0, "max": 0.0, "mean": 0.0, "std": 0.0, "missing_fraction": 0.0},
        "company": {"type": "string", "domain": ["Flash Cab"], "missing_fraction": 0.34}}}
    stats = {"features": {
        "fare": {"type": "float", "count": 40, "missing": 0, "min": 3.0, "max": 90.0, "mean": 1304.0, "std": 1.0},
        "tolls": {"type": "float", "count": 40, "missing": 0, "min": 0.0, "max": 2.0, "mean": 0.5, "std": 0.1},
        "company": {"type": "string", "count": 19, "missing": 21, "top": [["LEAKCO Cab", 4], ["Flash Cab", 15]]}}}
    anomalies = check_split("test", stats, schema, max_mean_drift=1.0, range_margin=0.0, max_missing_increase=0.05)
    (tmp_path / "validation.json").write_text(json.dumps({"anomalies": anomalies, "checked": ["test"]},
                                                         allow_nan=False))
    record = SimpleNamespace(type="ValidationReport", uri=str(tmp_path))
    print_validation(SimpleNamespace(nodes={"validate_examples": SimpleNamespace(outputs={"report": record})}), 4)
    line = capsys.readouterr().out
    for named in ("fare mean drift 116 train std in test", "tolls mean drift inf train std in test",
                  "company 1 new categories (21.05%) in test", "company 52.50% missing in test"):
        assert named in line, line
