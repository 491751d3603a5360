"""SD Cloud middleware: the HTTP API between the WebUI extension and the inference GPUs.

Layers (DESIGN §3): ``domain`` (pure rules) <- ``services`` (use cases over ``ports``) <-
``api`` (FastAPI); ``adapters`` implement the ports; ``bootstrap`` wires them from ``settings``.
"""

__version__ = "0.1.0"
