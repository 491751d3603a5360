"""AWS Lambda entry point that runs one job of a real-time SageMaker endpoint.

The API function cannot wait for a real-time endpoint (Lambda freezes it once it has answered), so
it hands each such job here as an asynchronous Event invocation; this function invokes the endpoint,
stores the result and ends the job (middleware/adapters/sagemaker_compute.py). A malformed event is
logged and answered, never retried.
"""

from __future__ import annotations

from middleware.bootstrap import aws_runtime

handler = aws_runtime(provision_admin=False).compute.lambda_realtime_handler
