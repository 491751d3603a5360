"""install.py run the way the WebUI runs it: launch_utils.run_extension_installer starts
`python install.py` with the WebUI's folder on PYTHONPATH, so `import launch` is the WebUI's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.local_processes import REPO

STANDIN = REPO / "tests" / "extension" / "webui_standin"


def _run_installer(tmp_path: Path, commandline_args: str = "", extension: Path = REPO) -> tuple[str, str]:
    pip_log = tmp_path / "pip.log"
    code = ("import sys; from modules import launch_utils; "
            f"launch_utils.run_extension_installer({str(extension)!r}); "
            "print('errors:', len(__import__('modules.errors', fromlist=['x']).exception_records))")
    env = {**os.environ, "PYTHONPATH": str(STANDIN), "SDCLOUD_STANDIN_PIP_LOG": str(pip_log),
           "COMMANDLINE_ARGS": commandline_args}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,  # noqa: S603
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr, pip_log.read_text() if pip_log.exists() else ""


@pytest.mark.parametrize("args", ["", "--skip-install"])
def test_install_py_installs_nothing_and_is_idempotent(tmp_path: Path, args: str) -> None:
    first_output, first_pip = _run_installer(tmp_path, args)
    second_output, second_pip = _run_installer(tmp_path, args)

    assert "errors: 0" in first_output and "errors: 0" in second_output, first_output
    assert "Error running install.py" not in first_output + second_output
    assert first_pip == second_pip == "", "the WebUI's pins already hold everything SD Cloud needs"


def test_install_py_asks_only_through_the_webuis_launcher() -> None:
    source = (REPO / "install.py").read_text()
    assert "import launch" in source and "launch.is_installed" in source and "launch.run_pip" in source
    assert "subprocess" not in source and "pip install" not in source.replace("install {requirement}", "")


def test_a_missing_package_would_be_asked_of_the_webuis_pip(tmp_path: Path) -> None:
    """The same install.py with one requirement the environment lacks: exactly that one goes to
    launch.run_pip (so the two tests above show a real "nothing to do", not a silent no-op)."""
    extension = tmp_path / "ext"
    extension.mkdir()
    source = (REPO / "install.py").read_text()
    assert '("gradio", "gradio"),' in source
    (extension / "install.py").write_text(
        source.replace('("gradio", "gradio"),', '("gradio", "gradio"),\n    ("sdcloud_missing_pkg", "sdcloud-missing-pkg"),'))
    _, pip = _run_installer(tmp_path, extension=extension)
    assert pip.count("\n") == 1 and "-m pip install sdcloud-missing-pkg --prefer-binary" in pip
