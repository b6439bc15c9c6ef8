"""The ``edgepipe`` commands that run the same DAG elsewhere: ``compile`` (a Kubeflow Pipelines v2 YAML, for
Kubeflow or Vertex AI), ``submit`` (to Vertex AI Pipelines) and ``execute-node`` (what each compiled task runs).

Kept apart from :mod:`edgepipe.pipeline.cli` so the local commands do not carry the cloud ones; the cloud SDKs are
imported only when a command needs them (exit 5 when missing). See docs/cloud.md.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", metavar="[PIPELINE] CONFIG",
                        help="YAML file or bundled template name; or your pipeline (FILE.py[:function] or "
                             "package.module:function) followed by its YAML config")
    parser.add_argument("pipeline_config", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value (repeatable)")
    parser.add_argument("--pipeline-factory", default=None, metavar="MODULE:FUNCTION",
                        help="function Config -> Pipeline to build with (default: the config's template)")


def add_cloud_commands(sub) -> None:
    """compile / submit / execute-node: running the same DAG on Kubeflow or Vertex AI (docs/cloud.md)."""
    comp = sub.add_parser("compile", help="compile a pipeline to a Kubeflow Pipelines v2 YAML (Kubeflow, Vertex AI)")
    config_arguments(comp)
    comp.add_argument("--target", choices=["kfp", "vertex"], default="kfp",
                      help="both write the same KFP v2 spec (default: kfp)")
    comp.add_argument("--output", default="pipeline.yaml", help="YAML to write (default: pipeline.yaml)")
    comp.add_argument("--image", help="image every task runs (default: $EDGEPIPE_IMAGE or edgepipe:latest)")
    comp.add_argument("--pipeline-root", help="default pipeline root baked into the spec (gs://..., s3://...)")

    submit = sub.add_parser("submit", help="compile and submit a pipeline run to Vertex AI Pipelines")
    config_arguments(submit)
    submit.add_argument("--target", choices=["vertex"], default="vertex")
    submit.add_argument("--project", help="Google Cloud project (default: from gcloud credentials)")
    submit.add_argument("--region", required=True, help="Vertex AI region, e.g. europe-west4")
    submit.add_argument("--pipeline-root", required=True, help="gs://BUCKET/PATH for the run's artifacts")
    submit.add_argument("--image", help="image in a registry Vertex can pull (default: $EDGEPIPE_IMAGE)")
    submit.add_argument("--service-account", help="service account the run's tasks act as")
    submit.add_argument("--display-name", help="run name in the console (default: the pipeline's name)")
    submit.add_argument("--output", help="also keep the compiled YAML here")
    submit.add_argument("--dataflow", action="store_true",
                        help="run the Beam components on Dataflow in the same project and region")
    submit.add_argument("--wait", action="store_true", help="wait for the run to finish")

    node = sub.add_parser("execute-node", help="run one node of a pipeline on given artifact paths (task entry point)")
    config_arguments(node)
    node.add_argument("--config-json", help="the whole config as JSON (instead of CONFIG and --set)")
    node.add_argument("--node", help="node name in the pipeline the config builds")
    node.add_argument("--spec-json", help="a resolved node spec (what a compiled pipeline's tasks receive)")
    node.add_argument("--input", dest="inputs", action="append", default=[], metavar="NAME=PATH")
    node.add_argument("--output", dest="outputs", action="append", default=[], metavar="NAME=PATH")


def _factory(args: argparse.Namespace) -> str:
    from edgepipe.pipeline.remote import DEFAULT_FACTORY

    return args.pipeline_factory or DEFAULT_FACTORY


def _load(args: argparse.Namespace, check_image: bool = False):
    """The config, and the factory that builds the DAG: your pipeline's ``module:function`` when the arguments
    name one (``pipeline/user_pipeline.py``; with ``check_image`` its function and components must be importable
    by the task image, else one line and exit 2), else ``--pipeline-factory`` or the built-in builder."""
    from edgepipe.pipeline.config import load_config
    from edgepipe.pipeline.errors import ConfigError
    from edgepipe.pipeline.user_pipeline import check_image_imports, load, split_targets
    from edgepipe.pipeline.user_pipeline import load_config as load_user_config

    pipeline_ref, config_name = split_targets(args.config, args.pipeline_config)
    if not pipeline_ref:
        return load_config(config_name, args.overrides), _factory(args)
    if args.pipeline_factory:
        raise ConfigError(f"give either a pipeline ({pipeline_ref}) or --pipeline-factory, not both")
    user = load(pipeline_ref)  # before the config: the families and tasks it imports are then valid choices
    config = load_user_config(config_name, args.overrides)
    if check_image:
        check_image_imports(user.build(config), user.factory)
    else:  # not built here: the window check load_user_config held back for build() is due now
        from edgepipe.pipeline.config import raise_deferred

        raise_deferred(config)
    return config, user.factory


def cmd_compile(args: argparse.Namespace) -> int:
    from edgepipe.pipeline.errors import ConfigError
    from edgepipe.pipeline.kfp_compiler import compile_pipeline

    if not args.output.strip():  # Path("") is the current directory, which KFP refuses with a traceback
        raise ConfigError("--output is empty; give the YAML file to write")
    config, factory = _load(args, check_image=True)
    compiled = compile_pipeline(config, args.output, image=args.image, factory=factory,
                                pipeline_root=args.pipeline_root)
    print(f"compiled '{compiled.name}' ({len(compiled.tasks)} node tasks + resolve, {len(compiled.parameters)} "
          f"parameters, image {compiled.image}) to {compiled.path}")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    import tempfile

    from edgepipe.pipeline.cloud import check_submission, require_vertex, submit_vertex
    from edgepipe.pipeline.kfp_compiler import compile_pipeline, default_image

    image = args.image or default_image()
    check_submission(args.pipeline_root, image)
    session = require_vertex(args.project)  # before any building: no SDK or credentials, one line and exit 5
    config, factory = _load(args, check_image=True)
    if args.dataflow:
        from edgepipe.pipeline.beam_options import IMAGE_SOURCE_DIR, dataflow_args, merge_beam_args

        extra = dataflow_args(session.project, args.region, f"{args.pipeline_root.rstrip('/')}/dataflow-tmp",
                              setup_file=f"{IMAGE_SOURCE_DIR}/setup.py", service_account=args.service_account)
        config.pipeline.beam_args = merge_beam_args(config.pipeline.beam_args, extra)
    with tempfile.TemporaryDirectory(prefix="edgepipe-submit-") as tmp:
        path = Path(args.output) if args.output else Path(tmp) / "pipeline.yaml"
        compiled = compile_pipeline(config, path, image=image, factory=factory, pipeline_root=args.pipeline_root)
        job = submit_vertex(session, compiled.path, region=args.region, pipeline_root=args.pipeline_root,
                            display_name=args.display_name or compiled.name, service_account=args.service_account,
                            wait=args.wait)
    print(f"submitted {job}")
    print(f"console: https://console.cloud.google.com/vertex-ai/pipelines?project={session.project}")
    return 0


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    from edgepipe.pipeline.errors import ConfigError

    pairs = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"{flag} '{value}': expected NAME=PATH")
        pairs[name] = path
    return pairs


def cmd_execute_node(args: argparse.Namespace) -> int:
    from edgepipe.pipeline.errors import ConfigError
    from edgepipe.pipeline.remote import build_from_config, execute_spec, json_safe, node_spec

    inputs, outputs = _pairs(args.inputs, "--input"), _pairs(args.outputs, "--output")
    if args.spec_json:
        spec = json.loads(args.spec_json)
    else:
        if not args.node:
            raise ConfigError("execute-node needs --node NAME (with a config) or --spec-json")
        from edgepipe.pipeline.config import validate

        if args.config_json:
            try:
                raw = json.loads(args.config_json)
            except ValueError as err:
                raise ConfigError(f"--config-json is not JSON: {err}") from None
            config = validate(raw, source="--config-json", dumped=True)
            factory = _factory(args)
        else:
            config, factory = _load(args)
        pipeline = build_from_config(config, factory)
        try:
            spec = node_spec(pipeline.node(args.node))
        except KeyError:
            raise ConfigError(f"no node '{args.node}' in pipeline '{pipeline.name}' "
                              f"(nodes: {', '.join(n.name for n in pipeline.nodes)})") from None
    artifacts, metrics = execute_spec(spec, inputs, outputs)
    print(json.dumps({"node": spec["node"], "outputs": {k: str(a.path) for k, a in artifacts.items()},
                      "metrics": json_safe(metrics)}, sort_keys=True))
    return 0
