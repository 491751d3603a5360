"""The WebUI's launch.py: the names install.py scripts import (`launch.run_pip`, ...)."""

from __future__ import annotations

from modules import launch_utils

args = launch_utils.args
python = launch_utils.python
git = launch_utils.git
index_url = launch_utils.index_url
dir_repos = launch_utils.dir_repos

commit_hash = launch_utils.commit_hash
git_tag = launch_utils.git_tag

run = launch_utils.run
is_installed = launch_utils.is_installed
repo_dir = launch_utils.repo_dir

run_pip = launch_utils.run_pip
run_extension_installer = launch_utils.run_extension_installer


def main():
    raise SystemExit("the stand-in is started by the tests (webui.py), not by launch.py")
