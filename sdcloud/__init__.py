"""SD Cloud, extension side: client of the middleware and the gradio UI builders.

Runs inside the WebUI's Python (3.10+) and depends only on requests, Pillow and gradio.
"""

__version__ = "0.1.0"
