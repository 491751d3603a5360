"""AWS Lambda entry point of the /v1 API (API Gateway REST proxy events, through Mangum).

The runtime is built at import, during the cold start, so every request after it finds the
clients and the app ready. Lifespan is off: the app has no start-up work, and Lambda freezes the
process between requests anyway.
"""

from __future__ import annotations

from mangum import Mangum

from middleware.bootstrap import aws_runtime

handler = Mangum(aws_runtime().app, lifespan="off")
