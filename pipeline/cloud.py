"""Submitting a compiled pipeline to Vertex AI Pipelines.

``google-cloud-aiplatform`` is an optional extra (``edgepipe[cloud]``) and is imported only here, lazily. Everything
that can be checked without running anything is checked first (the package, credentials, a ``gs://`` pipeline
root, an image a cloud project can pull), so a missing piece costs one line on the terminal and exit status 5,
not a compiled pipeline and a failed job.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgepipe.pipeline.errors import ConfigError, EdgepipeError


class CloudError(EdgepipeError):
    """A cloud SDK, credentials or the service itself is missing or refused the request (exit 5)."""

    exit_code = 5


@dataclass
class VertexSession:
    """An importable SDK plus credentials: what a submission needs before any work is done."""

    aiplatform: Any
    credentials: Any
    project: str


def require_vertex(project: str | None) -> VertexSession:
    """Import the SDK and find Application Default Credentials, or raise CloudError saying how to get them."""
    try:
        from google.cloud import aiplatform
    except ImportError:
        raise CloudError("submitting to Vertex AI needs google-cloud-aiplatform: pip install 'edgepipe[cloud]'") \
            from None
    try:
        import google.auth
        from google.auth import exceptions as auth_exceptions
    except ImportError:
        raise CloudError("submitting to Vertex AI needs google-auth: pip install 'edgepipe[cloud]'") from None
    try:
        credentials, default_project = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    except auth_exceptions.DefaultCredentialsError as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CloudError(f"no Google Cloud credentials ({detail}); run 'gcloud auth application-default login' "
                         "or set GOOGLE_APPLICATION_CREDENTIALS to a service account key") from None
    project = project or default_project
    if not project:
        raise CloudError("no Google Cloud project: pass --project or run 'gcloud config set project PROJECT'")
    return VertexSession(aiplatform, credentials, project)


def check_submission(pipeline_root: str, image: str) -> None:
    """Arguments Vertex would reject only after the upload: a non-GCS root, an image no registry serves."""
    if not pipeline_root.startswith("gs://"):
        raise ConfigError(f"--pipeline-root must be a gs:// path for Vertex AI (got '{pipeline_root}')")
    if "/" not in image:  # 'edgepipe:latest' means Docker Hub's library/edgepipe, not the image built here
        raise ConfigError(f"--image '{image}' is a local image name; push it to a registry Vertex can pull from and "
                          "pass it, e.g. --image REGION-docker.pkg.dev/PROJECT/REPO/edgepipe:0.1.0")


def submit_vertex(session: VertexSession, template: Path, *, region: str, pipeline_root: str, display_name: str,
                  service_account: str | None = None, parameter_values: dict[str, Any] | None = None,
                  wait: bool = False) -> str:
    """Create the PipelineJob from a compiled YAML and submit it; returns the job's resource name."""
    aiplatform = session.aiplatform
    try:
        aiplatform.init(project=session.project, location=region, credentials=session.credentials)
        job = aiplatform.PipelineJob(display_name=display_name, template_path=str(template),
                                     pipeline_root=pipeline_root, parameter_values=parameter_values or {},
                                     enable_caching=True, project=session.project, location=region,
                                     credentials=session.credentials)
        job.submit(service_account=service_account)
        if wait:
            job.wait()
    except EdgepipeError:
        raise
    except Exception as err:  # the SDK's errors (PermissionDenied, NotFound, network) become one line
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CloudError(f"Vertex AI refused the pipeline job: {type(err).__name__}: {detail}") from None
    return str(job.resource_name)
