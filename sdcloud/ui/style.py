"""CSS for the SD Cloud UI (the standalone app passes it to gr.Blocks; the WebUI gets style.css)."""

CSS = """
.sdcloud-status { padding: 6px 10px; border-radius: 6px; min-height: 1.6em; font-size: 0.95em;
                  border: 1px solid var(--border-color-primary); background: var(--background-fill-secondary); }
.sdcloud-status-error { color: #b91c1c; border-color: #fca5a5; background: #fef2f2; }
.sdcloud-status-done { color: #166534; }
.sdcloud-status-running { color: var(--body-text-color); }
"""
