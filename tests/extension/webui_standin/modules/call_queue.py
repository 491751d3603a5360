"""How the UI calls generation: one job at a time under queue_lock, state begun and ended, and any
exception turned into an error message in the page (the lock is always released)."""

from __future__ import annotations

import html
import os  # noqa: F401
import threading
import time
import traceback
from functools import wraps

from modules import errors, shared

queue_lock = threading.Lock()


def wrap_queued_call(func):
    def f(*args, **kwargs):
        with queue_lock:
            res = func(*args, **kwargs)
        return res

    return f


def wrap_gradio_gpu_call(func, extra_outputs=None):
    @wraps(func)
    def f(*args, **kwargs):
        id_task = args[0] if args and isinstance(args[0], str) and args[0].startswith("task(") else None
        with queue_lock:
            shared.state.begin(job=id_task or "(unknown)")
            try:
                res = func(*args, **kwargs)
            finally:
                shared.state.end()
        return res

    return wrap_gradio_call(f, extra_outputs=extra_outputs, add_stats=True)


def wrap_gradio_call(func, extra_outputs=None, add_stats=False):
    @wraps(func)
    def f(*args, **kwargs):
        t = time.perf_counter()
        try:
            res = list(func(*args, **kwargs))
        except Exception as e:
            errors.report("Error completing request", exc_info=True)
            error_message = f'{type(e).__name__}: {e}'
            res = (extra_outputs or [None, '', '']) + [f"<div class='error'>{html.escape(error_message)}</div>"]
            _ = traceback
        shared.state.skipped = False
        shared.state.interrupted = False
        shared.state.stopping_generation = False
        shared.state.job_count = 0
        if add_stats:
            res[-1] += f"<div class='performance'><p class='time'>Time taken: {time.perf_counter() - t:.1f} s</p></div>"
        return tuple(res)

    return f


def wrap_gradio_call_no_job(func, extra_outputs=None, add_stats=False):
    return wrap_gradio_call(func, extra_outputs=extra_outputs, add_stats=add_stats)
