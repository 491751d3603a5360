"""AWS Lambda entry point of the scheduled sweeper (an EventBridge schedule, every minute).

Relays what containers published for queued and silent jobs, then ends the jobs whose worker
went silent or whose cancel went unanswered (middleware/services/sweeper.py).
"""

from __future__ import annotations

from middleware.bootstrap import aws_runtime
from middleware.services.scheduled_sweep import sweep_handler

handler = sweep_handler(lambda: aws_runtime(provision_admin=False).sweeper)
