"""AWS Lambda entry point for the model library's long work: one import by URL or one upload's
verification per invocation (queued by the API function; middleware/adapters/lambda_library_worker.py)."""

from __future__ import annotations

from middleware.adapters.lambda_library_worker import library_event_handler
from middleware.bootstrap import aws_runtime

handler = library_event_handler(aws_runtime(provision_admin=False).services.library)
