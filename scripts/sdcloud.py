"""SD Cloud for AUTOMATIC1111 / Forge: the one file the WebUI loads. Everything lives in the
`sdcloud` package (the WebUI puts this extension's folder on sys.path while it loads this file)."""

from sdcloud.webui import SDCloudScript, register_callbacks

register_callbacks()

__all__ = ["SDCloudScript"]
