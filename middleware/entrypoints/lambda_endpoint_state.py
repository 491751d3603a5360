"""Lambda entry point: EventBridge 'SageMaker Endpoint State Change' -> the endpoint service."""

from middleware.bootstrap import aws_runtime
from middleware.services.endpoints import endpoint_state_handler

handler = endpoint_state_handler(lambda: aws_runtime(provision_admin=False))
