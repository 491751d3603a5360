"""SD Cloud's installer hook: the WebUI runs it (`python install.py`, its own folder on PYTHONPATH)
when the extension is installed and at each start unless --skip-install.

The extension needs only what the WebUI already ships (requests, Pillow, gradio), so this
normally installs nothing: it checks, and asks pip only for a package that is really missing.
Running it again changes nothing.
"""

import launch

# (import name the WebUI's launch.is_installed checks, pip requirement) — all in the WebUI's own pins
REQUIREMENTS = (
    ("requests", "requests"),
    ("PIL", "Pillow"),
    ("gradio", "gradio"),
)


def main() -> None:
    if getattr(launch.args, "skip_install", False):
        return
    for module, requirement in REQUIREMENTS:
        if not launch.is_installed(module):
            launch.run_pip(f"install {requirement}", f"{requirement} for SD Cloud")


main()
