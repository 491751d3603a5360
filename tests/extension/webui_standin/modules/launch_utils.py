"""The launcher helpers install.py scripts call (`launch.is_installed`, `launch.run_pip`).

The stand-in never reaches a package index: `run_pip` records each command in the file named by
SDCLOUD_STANDIN_PIP_LOG (one line each) and runs nothing; `--skip-install` makes it return at
once, as in the WebUI."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shlex
import subprocess
import sys
from functools import lru_cache

from modules import cmd_args, errors  # noqa: F401
from modules.paths_internal import extensions_dir, script_path  # noqa: F401

args, _ = cmd_args.parser.parse_known_args(sys.argv[1:] + shlex.split(os.environ.get("COMMANDLINE_ARGS", "")))

python = sys.executable
git = os.environ.get('GIT', "git")
index_url = os.environ.get('INDEX_URL', "")
dir_repos = "repositories"
default_command_live = (os.environ.get('WEBUI_LAUNCH_LIVE_OUTPUT') == "1")


@lru_cache
def commit_hash():
    return "<none>"


@lru_cache
def git_tag():
    return "<none>"


def run(command, desc=None, errdesc=None, custom_env=None, live: bool = default_command_live) -> str:
    if desc is not None:
        print(desc)
    run_kwargs = {"args": command, "shell": True, "env": os.environ if custom_env is None else custom_env,
                  "encoding": 'utf8', "errors": 'ignore'}
    if not live:
        run_kwargs["stdout"] = run_kwargs["stderr"] = subprocess.PIPE
    result = subprocess.run(**run_kwargs)  # noqa: S602 - the WebUI runs its installers through a shell
    if result.returncode != 0:
        message = f"{errdesc or 'Error running command'}.\nCommand: {command}\nError code: {result.returncode}"
        if result.stdout:
            message += f"\nstdout: {result.stdout}"
        if result.stderr:
            message += f"\nstderr: {result.stderr}"
        raise RuntimeError(message)
    return result.stdout or ""


def is_installed(package):
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        try:
            spec = importlib.util.find_spec(package)
        except ModuleNotFoundError:
            return False
        return spec is not None
    return dist is not None


def repo_dir(name):
    return os.path.join(script_path, dir_repos, name)


def run_pip(command, desc=None, live=default_command_live):
    if args.skip_install:
        return
    index_url_line = f' --index-url {index_url}' if index_url != '' else ''
    line = f'"{python}" -m pip {command} --prefer-binary{index_url_line}'
    log = os.environ.get("SDCLOUD_STANDIN_PIP_LOG")
    if log:
        with open(log, "a", encoding="utf8") as fh:
            fh.write(line + "\n")
    print(f"Installing {desc}")
    return ""


def run_extension_installer(extension_dir):
    path_installer = os.path.join(extension_dir, "install.py")
    if not os.path.isfile(path_installer):
        return
    try:
        env = os.environ.copy()
        env['PYTHONPATH'] = f"{script_path}{os.pathsep}{env.get('PYTHONPATH', '')}"
        stdout = run(f'"{python}" "{path_installer}"',
                     errdesc=f"Error running install.py for extension {extension_dir}", custom_env=env).strip()
        if stdout:
            print(stdout)
    except Exception as e:
        errors.report(str(e))
