"""AWS Lambda entry point for SageMaker async success/error notifications (SNS subscriptions).

A malformed record is logged and skipped; an error reaching the stores raises, so Lambda retries
the event and its dead-letter queue keeps what never succeeds (middleware/services/async_completion.py).
"""

from __future__ import annotations

from middleware.bootstrap import aws_runtime

handler = aws_runtime(provision_admin=False).completion.lambda_handler
