"""The model library inside the stand-in WebUI: the Models page's sync uses the WebUI's folders
(modules.paths / cmd_opts, read only by sdcloud.webui), the accordion carries the cloud VAE."""

from __future__ import annotations

from pathlib import Path


def test_sync_reads_the_webuis_own_model_folders(webui) -> None:  # type: ignore[no-untyped-def]
    from modules import shared as paths

    import sdcloud.webui as ext
    from sdcloud.models.local_folders import scan

    folders = ext.local_model_folders().folders
    models = Path(paths.models_path)
    assert folders["checkpoint"] == (models / "Stable-diffusion",)
    assert folders["lora"] == (models / "Lora", models / "LyCORIS")
    assert folders["embedding"] == (Path(paths.data_path) / "embeddings",)
    assert folders["vae"] == (models / "VAE",) and folders["controlnet"] == (models / "ControlNet",)
    lora = models / "Lora" / "ink.safetensors"
    lora.parent.mkdir(parents=True, exist_ok=True)
    lora.write_bytes(b"x" * 100)
    try:
        assert [(m.type, m.path) for m in scan(ext.local_model_folders())] == [("lora", lora)]
    finally:
        lora.unlink()


def test_the_tab_has_the_sync_and_the_accordion_the_cloud_vae(webui) -> None:  # type: ignore[no-untyped-def]
    ids = {getattr(b, "elem_id", None) for b in webui.demo.blocks.values()}
    for blocks, _label, ifid in webui.ui_tabs:
        if ifid == "sdcloud_cloud_tab":
            ids |= {getattr(b, "elem_id", None) for b in blocks.blocks.values()}
    assert {"sdcloud_cloud_models_sync", "sdcloud_cloud_models_upload", "sdcloud_cloud_models_own"} <= ids
    folder_box = next(b for b in [*webui.demo.blocks.values(), *[x for bl, _, i in webui.ui_tabs
                                                                 if i == "sdcloud_cloud_tab" for x in bl.blocks.values()]]
                      if getattr(b, "elem_id", None) == "sdcloud_cloud_models_sync_folder")
    assert folder_box.visible is False  # inside the WebUI its own folders are used
