"""``python -m inference_container.server``: the ``serve`` entry point SageMaker runs (HTTP app: app.py)."""

from inference_container.bootstrap import main

if __name__ == "__main__":
    main()
