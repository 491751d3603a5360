"""AWS Lambda entry point that runs one import by URL (queued by the API function; see
middleware/adapters/lambda_import_launcher.py)."""

from __future__ import annotations

from middleware.adapters.lambda_import_launcher import import_event_handler
from middleware.bootstrap import aws_runtime

handler = import_event_handler(aws_runtime(provision_admin=False).services.library.run_import)
