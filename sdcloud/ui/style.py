"""What the SD Cloud UI adds to gradio's page: CSS (the standalone app passes it to gr.Blocks; the
WebUI gets style.css) and the small browser scripts the Generate tab runs through gradio's js hook.

Nothing here needs a font beyond the system's: state markers and icons are drawn with CSS.
"""

from __future__ import annotations

import json

CSS = """
.sdcloud-status { padding: 6px 10px; border-radius: 6px; min-height: 1.6em; font-size: 0.95em;
                  border: 1px solid var(--border-color-primary); background: var(--background-fill-secondary); }
.sdcloud-status::before { content: ""; display: inline-block; width: 0.6em; height: 0.6em; margin-right: 0.5em;
                          border-radius: 50%; vertical-align: middle; background: currentColor; opacity: 0.35; }
.sdcloud-status-running::before { opacity: 0.8; animation: sdcloud-pulse 1.2s ease-in-out infinite; }
.sdcloud-status-error { color: #b91c1c; border-color: #fca5a5; background: #fef2f2; }
.sdcloud-status-error::before, .sdcloud-status-done::before { opacity: 1; }
.sdcloud-status-done { color: #166534; }
.sdcloud-status-running { color: var(--body-text-color); }
@keyframes sdcloud-pulse { 50% { opacity: 0.2; } }
.sdcloud-preview:empty { display: none; }
.sdcloud-preview-img { max-width: 100%; max-height: 320px; image-rendering: auto; border-radius: 6px; }
"""

# Tooltips of the Generate tab's controls, by elem_id suffix (gr.Button has no title in 3.41).
TOOLTIPS = {
    "generate": "Start a generation in the cloud (Ctrl+Enter or Cmd+Enter in a prompt box)",
    "cancel": "Stop the running job; the images sampled so far come back",
    "random_seed": "Set the seed to -1: a new random seed each time",
    "reuse_seed": "Put back the seed of the image selected in the gallery (the first one otherwise)",
    "refresh": "Reload the lists of checkpoints and endpoints",
}


def running_job_key(prefix: str) -> str:
    """The localStorage key that keeps the running job's id across a page reload."""
    return f"{prefix}_running_job"


def setup_js(prefix: str) -> str:
    """Run once on page load: tooltips, Ctrl/Cmd+Enter in the prompt boxes clicks Generate, and a
    watch on the status line that remembers the running job (its data-job while data-state is
    "running") in localStorage and forgets it when the job's end is shown."""
    config = json.dumps(
        {
            "prefix": prefix,
            "key": running_job_key(prefix),
            "tips": {f"{prefix}_{name}": tip for name, tip in TOOLTIPS.items()},
        }
    )
    return """
() => {
  const cfg = __CFG__;
  const host = document.querySelector('gradio-app');
  const root = host && host.shadowRoot ? host.shadowRoot : document;
  const flag = '__sdcloud_setup_' + cfg.prefix;
  if (window[flag]) { return []; }
  window[flag] = true;
  const byId = (id) => root.querySelector('#' + id);
  const tips = () => {
    for (const [id, tip] of Object.entries(cfg.tips)) {
      const el = byId(id);
      if (!el) continue;
      const button = el.tagName === 'BUTTON' ? el : (el.querySelector('button') || el);
      if (button.title !== tip) button.title = tip;
    }
  };
  const remember = () => {
    const line = root.querySelector('#' + cfg.prefix + '_progress .sdcloud-status');
    if (!line || !line.dataset.job) return;
    try {
      if (line.dataset.state === 'running') {
        localStorage.setItem(cfg.key, line.dataset.job);
      } else if (localStorage.getItem(cfg.key) === line.dataset.job) {
        localStorage.removeItem(cfg.key);
      }
    } catch (e) { /* storage off: a reload then simply does not re-attach */ }
  };
  const prompts = [cfg.prefix + '_prompt', cfg.prefix + '_negative_prompt'];
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Enter' || !(e.ctrlKey || e.metaKey)) return;
    const target = e.composedPath ? e.composedPath()[0] : e.target;
    if (!target || !prompts.some((id) => { const box = byId(id); return box && box.contains(target); })) return;
    e.preventDefault();
    const el = byId(cfg.prefix + '_generate');
    const button = el && (el.tagName === 'BUTTON' ? el : el.querySelector('button'));
    if (button && !button.disabled) button.click();
  }, true);
  new MutationObserver(() => { tips(); remember(); }).observe(
    root === document ? document.body : root, {subtree: true, childList: true, attributes: true,
                                               attributeFilter: ['data-job', 'data-state']});
  tips();
  remember();
  return [];
}
""".replace("__CFG__", config)


def stored_job_js(prefix: str) -> str:
    """The running job remembered before the reload, as the input of the re-attach handler."""
    key = json.dumps(running_job_key(prefix))
    script = "() => { let id = ''; try { id = localStorage.getItem(__KEY__) || ''; } catch (e) {} return [id]; }"
    return script.replace("__KEY__", key)
