"""Process entry points: local server, and (later) the AWS Lambda handlers."""
