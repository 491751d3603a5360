"""tools.local_processes.LocalStack owns every process it starts (the benchmarks leaked one
middleware and one container per run when `with LocalStack(...).start() as stack:` started twice)."""

from __future__ import annotations

from tools.local_processes import LocalStack


class _Recorder:
    started: list[str] = []
    stopped: list[str] = []

    def __init__(self, name: str) -> None:
        self.name = name

    def start(self) -> _Recorder:
        _Recorder.started.append(self.name)
        return self

    def wait_ready(self, timeout: float) -> _Recorder:
        return self

    def stop(self) -> None:
        _Recorder.stopped.append(self.name)


def test_entering_a_started_stack_does_not_start_it_again(tmp_path, monkeypatch):
    _Recorder.started, _Recorder.stopped = [], []
    for kind in ("container", "middleware", "ui"):
        monkeypatch.setattr(LocalStack, f"{kind}_service", lambda self, kind=kind: _Recorder(kind))
    stack = LocalStack(data_dir=tmp_path / "data", checkpoint=tmp_path / "tiny.safetensors", with_ui=False)

    with stack.start(timeout=1) as entered:
        assert entered is stack

    assert _Recorder.started == ["container", "middleware"]
    assert sorted(_Recorder.stopped) == sorted(_Recorder.started)
