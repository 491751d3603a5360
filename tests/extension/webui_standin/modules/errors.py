"""Error reporting as the WebUI does it: to stderr, recorded, never raised."""

from __future__ import annotations

import sys
import textwrap
import traceback

exception_records = []


def format_traceback(tb):
    return [[f"{x.filename}, line {x.lineno}, {x.name}", x.line] for x in traceback.extract_tb(tb)]


def format_exception(e, tb):
    return {"exception": str(e), "traceback": format_traceback(tb)}


def get_exceptions():
    return list(reversed(exception_records))


def record_exception():
    _, e, tb = sys.exc_info()
    if e is None:
        return
    if exception_records and exception_records[-1] == e:
        return
    exception_records.append(format_exception(e, tb))
    if len(exception_records) > 5:
        exception_records.pop(0)


def report(message: str, *, exc_info: bool = False) -> None:
    record_exception()
    for line in message.splitlines():
        print("***", line, file=sys.stderr)
    if exc_info:
        print(textwrap.indent(traceback.format_exc(), "    "), file=sys.stderr)
        print("---", file=sys.stderr)


def print_error_explanation(message):
    record_exception()
    print("=" * 70, file=sys.stderr)
    print(message.strip(), file=sys.stderr)
    print("=" * 70, file=sys.stderr)


def display(e: Exception, task, *, full_traceback=False):
    record_exception()
    print(f"{task or 'error'}: {type(e).__name__}", file=sys.stderr)
    print(traceback.format_exc(), file=sys.stderr)


already_displayed = {}


def display_once(e: Exception, task):
    record_exception()
    if task in already_displayed:
        return
    display(e, task)
    already_displayed[task] = 1


def run(code, task):
    try:
        code()
    except Exception as e:
        display(e, task)
