"""Known pipeline failures, each with a stable error code stored on the job row."""

from __future__ import annotations


class PipelineError(Exception):
    """A failure the user can act on; `code` is stable, `message` human-readable."""

    code = "pipeline_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message


class DatasetUnavailable(PipelineError):
    code = "dataset_unavailable"


class DatasetInvalid(PipelineError):
    code = "dataset_invalid"


class ModelUnavailable(PipelineError):
    code = "model_unavailable"


class ModelInvalid(PipelineError):
    code = "model_invalid"


class UnsupportedSpec(PipelineError):
    code = "unsupported_spec"


class ExportFailed(PipelineError):
    code = "export_failed"


class ExportParityFailed(PipelineError):
    code = "export_parity_failed"


class JobCanceled(Exception):
    """Raised at a step boundary when the job's cancel_requested flag is set."""
