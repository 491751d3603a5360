"""SD Cloud inside AUTOMATIC1111 v1.10 and Forge: the only module importing the WebUI's
``modules``. ``scripts/sdcloud.py`` (the file the WebUI loads) re-exports the Script defined here
and calls ``register_callbacks``.

How a generation moves to the cloud, with no local checkpoint needed (both WebUIs, UI and
/sdapi/v1): the AlwaysVisible script's ``before_process`` is the first thing
``processing.process_images`` does. There, when Cloud is on, we swap
``processing.process_images_inner`` for the cloud path and make the weight-reload step that comes
next a one-shot no-op (A1111: ``sd_models.reload_model_weights``; Forge:
``processing.manage_model_and_prompt_cache``). The cloud path restores both in ``finally``, also
when the job fails; a takeover left behind by an error before it ran is undone at the next
``before_process``. ``before_process`` itself never raises (the WebUI would only log it): every
refusal is raised from the cloud path, inside ``process_images``, where the WebUI shows it.

The top-level "Cloud" tab (``on_ui_tabs``) mounts the shared page builders (sdcloud.ui.cloud_tab);
its connection is the one set here in Settings → SD Cloud, and its "Send to txt2img" is the
WebUI's own paste mechanism.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import modules.scripts as scripts
import modules.sd_models as sd_models
from modules import images, infotext_utils, processing, script_callbacks, shared

from .client import SDCloudClient
from .errors import NotConfigured, ValidationFailed
from .models.local_folders import ModelFolders
from .records import Job
from .settings import SettingsStore, default_settings_path
from .ui.generation import DEFAULT_GENERATION_TIMEOUT_S, JobControl, follow_job
from .ui.messages import describe_error, progress_text
from .webui_job import (
    INFOTEXT_KEY,
    TITLE,
    CloudChoice,
    CloudRefused,
    build_payload,
    parse_infotext_value,
    with_cloud_vae,
)

log = logging.getLogger("sdcloud.webui")

SECTION = ("sdcloud", "SD Cloud")
KEY_OPTION = "sdcloud_api_key"

# ---- settings ----------------------------------------------------------------------------------

_store: SettingsStore | None = None


def settings_store() -> SettingsStore:
    """The 0600 file the standalone app uses too (SDCLOUD_UI_SETTINGS, else
    $XDG_CONFIG_HOME/sdcloud/ui-settings.json): the API key lives there, never in config.json."""
    global _store
    path = os.environ.get("SDCLOUD_UI_SETTINGS") or str(default_settings_path())
    if _store is None or str(_store.path) != path:
        _store = SettingsStore(path)
    return _store


def _opt(name: str, default: Any) -> Any:
    value = shared.opts.data.get(name, default)
    return default if value in (None, "") else value


def api_url() -> str:
    return str(_opt("sdcloud_api_url", "") or settings_store().current().api_url).strip()


def _take_key_out_of_options() -> None:
    """onchange of the key field: move what was typed into the 0600 file, then blank the option,
    so the WebUI's config.json (and /sdapi/v1/options, and the page) only ever hold ""."""
    typed = str(shared.opts.data.get(KEY_OPTION) or "").strip()
    shared.opts.data[KEY_OPTION] = ""
    if typed:
        settings_store().save(api_url() or settings_store().current().api_url, typed)
        log.info("SD Cloud API key saved to %s", settings_store().path)


def on_ui_settings() -> None:
    import gradio as gr

    opts, info = shared.opts, shared.OptionInfo
    opts.add_option("sdcloud_api_url", info(
        "", "API URL of the SD Cloud middleware (http://host:port)", section=SECTION))
    opts.add_option(KEY_OPTION, info(
        "", "API key (kept in a file only you can read, never shown again; leave empty to keep the saved one)",
        gr.Textbox, {"type": "password"}, onchange=_take_key_out_of_options, section=SECTION, restrict_api=True))
    opts.add_option("sdcloud_default_endpoint", info(
        "", "Default endpoint (empty: the middleware's default)", section=SECTION))
    opts.add_option("sdcloud_job_timeout", info(
        DEFAULT_GENERATION_TIMEOUT_S, "Job timeout, seconds (cold GPUs can take minutes to start)", gr.Number,
        {"precision": 0}, section=SECTION))
    opts.add_option("sdcloud_request_timeout", info(
        30, "HTTP read timeout, seconds", gr.Number, {"precision": 0}, section=SECTION))


def get_client() -> SDCloudClient:
    url = api_url()
    if not url:
        raise NotConfigured("no API URL is set (Settings → SD Cloud → API URL)")
    try:
        return SDCloudClient(url, settings_store().current().api_key,
                             timeout=(3.05, float(_opt("sdcloud_request_timeout", 30))))
    except ValueError as exc:
        raise NotConfigured(f"settings: {exc}") from None


def register_callbacks() -> None:
    """Called by scripts/sdcloud.py each time the WebUI (re)loads its scripts."""
    script_callbacks.on_ui_settings(on_ui_settings)
    script_callbacks.on_ui_tabs(on_ui_tabs)
    script_callbacks.on_app_started(_on_app_started)
    script_callbacks.on_script_unloaded(_undo_takeover)


# ---- the top-level Cloud tab ---------------------------------------------------------------------

CLOUD_TAB = ("Cloud", "sdcloud_cloud_tab")


def _connection_summary() -> str:
    """Where the connection stands, from the settings alone (no request: the page is opening)."""
    from .ui.messages import status_html

    url = api_url()
    if not url:
        return status_html("No API URL is set: Settings → SD Cloud → API URL, then Apply settings", "error")
    key = "an API key is saved" if settings_store().current().has_key else "no API key is saved"
    return status_html(f"API URL {url}, {key}. Press Test connection to check it.", "idle")


def _test_connection() -> str:
    from .ui.connection import check_connection, quick_client
    from .ui.messages import status_html

    if not api_url():
        return status_html("No API URL is set: Settings → SD Cloud → API URL, then Apply settings", "error")
    return check_connection(settings_store(), api_url(), "", quick_client)


def _send_to_txt2img(button: Any, infotext: Any) -> None:
    """The WebUI's own paste mechanism: it parses the infotext into the txt2img fields (our
    accordion's included, through the Script's infotext_fields) and switches to txt2img."""
    infotext_utils.register_paste_params_button(infotext_utils.ParamBinding(
        paste_button=button, tabname="txt2img", source_text_component=infotext))


def build_webui_cloud_tab() -> tuple[Any, Any]:
    """The Cloud tab's Blocks and its handles (sdcloud.ui.cloud_tab.CloudTab), wired to the
    WebUI: connection from Settings → SD Cloud, "Send to txt2img" through the WebUI's paste."""
    import gradio as gr

    from .ui.cloud_tab import HostConnection, build_cloud_tab

    with gr.Blocks(analytics_enabled=False) as blocks:
        tab = build_cloud_tab(get_client, host_connection=HostConnection(_connection_summary, _test_connection),
                              send_to_txt2img=_send_to_txt2img, local_folders=local_model_folders)
        tab.attach_load(blocks)
    return blocks, tab


def local_model_folders() -> ModelFolders:
    """The WebUI's model folders as this WebUI was started (--ckpt-dir, --lora-dir, ... move them;
    the defaults are under shared.models_path and data_path), for "Sync my local models"."""
    opts = shared.cmd_opts
    data = str(shared.data_path)
    models = str(shared.models_path)

    def folder(option: str, *default: str) -> str:
        # a relative option is relative to the WebUI's data folder (where it runs from by default)
        return os.path.join(data, str(getattr(opts, option, None) or os.path.join(*default)))

    layout = {
        "checkpoint": (folder("ckpt_dir", models, "Stable-diffusion"),),
        "lora": (folder("lora_dir", models, "Lora"), folder("lyco_dir_backcompat", models, "LyCORIS")),
        "embedding": (folder("embeddings_dir", data, "embeddings"),),
        "vae": (folder("vae_dir", models, "VAE"),),
        "controlnet": (folder("controlnet_dir", models, "ControlNet"),),
    }
    return ModelFolders({t: tuple(Path(d) for d in dict.fromkeys(dirs)) for t, dirs in layout.items()})


def on_ui_tabs() -> list[tuple[Any, str, str]]:
    """The Cloud tab. Builds components only (no request), so it is cheap under --nowebui, where
    the WebUI still calls it and never shows the result."""
    blocks, _tab = build_webui_cloud_tab()
    return [(blocks, *CLOUD_TAB)]


def _on_app_started(demo: Any, app: Any) -> None:
    # demo is None under --nowebui; nothing here needs it
    log.info("SD Cloud loaded (API URL %s)", api_url() or "not set")


# ---- the takeover of one generation -----------------------------------------------------------


class _Takeover:
    """The two swaps for one generation, undone exactly once."""

    def __init__(self, script: SDCloudScript, p: Any, choice: CloudChoice, checkpoint_override: str) -> None:
        self.script, self.p, self.choice = script, p, choice
        self.checkpoint_override = checkpoint_override
        self.inner = processing.process_images_inner
        if hasattr(processing, "manage_model_and_prompt_cache"):  # Forge
            self.reload_owner, self.reload_name = processing, "manage_model_and_prompt_cache"
        else:  # A1111
            self.reload_owner, self.reload_name = sd_models, "reload_model_weights"
        self.reload = getattr(self.reload_owner, self.reload_name)
        self.active = False

    def install(self) -> None:
        def skip_reload_once(*args: Any, **kwargs: Any) -> Any:
            setattr(self.reload_owner, self.reload_name, self.reload)
            return None

        def cloud_inner(p: Any) -> Any:
            if p is not self.p:  # a leftover from a run that failed before reaching us
                self.undo()
                return self.inner(p)
            try:
                return _run_in_cloud(p, self.choice, self.checkpoint_override)
            finally:
                self.undo()

        processing.process_images_inner = cloud_inner
        setattr(self.reload_owner, self.reload_name, skip_reload_once)
        self.active = True

    def undo(self) -> None:
        if not self.active:
            return
        self.active = False
        processing.process_images_inner = self.inner
        setattr(self.reload_owner, self.reload_name, self.reload)


_current: _Takeover | None = None


def _undo_takeover() -> None:
    global _current
    if _current is not None:
        _current.undo()
        _current = None


def before_process(script: SDCloudScript, p: Any, *args: Any) -> None:
    global _current
    _undo_takeover()
    choice = CloudChoice.from_args(args)
    if not choice.enabled:
        return
    if not choice.endpoint:
        choice = CloudChoice(True, str(_opt("sdcloud_default_endpoint", "")), choice.checkpoint, choice.vae)
    # process_images drops an sd_model_checkpoint override it cannot find locally: keep it here
    override = str((p.override_settings or {}).get("sd_model_checkpoint") or "")
    checkpoint = choice.checkpoint or override
    p.extra_generation_params[INFOTEXT_KEY] = CloudChoice(True, choice.endpoint, checkpoint).infotext_value()
    sd_models.model_data.was_loaded_at_least_once = True  # no "failed to load" on every request
    _current = _Takeover(script, p, CloudChoice(True, choice.endpoint, checkpoint, choice.vae), override)
    _current.install()


# ---- the cloud path ------------------------------------------------------------------------------


def _resolve_like_the_webui(p: Any) -> None:
    """Prompts after styles and the seeds of every image, exactly as process_images_inner sets them."""
    seed = processing.get_fixed_seed(p.seed)
    subseed = processing.get_fixed_seed(p.subseed)
    if p.restore_faces is None:
        p.restore_faces = shared.opts.face_restoration
    if p.tiling is None:
        p.tiling = shared.opts.tiling
    p.setup_prompts()
    if isinstance(seed, list):
        p.all_seeds = seed
    else:
        p.all_seeds = [int(seed) + (x if p.subseed_strength == 0 else 0) for x in range(len(p.all_prompts))]
    if isinstance(subseed, list):
        p.all_subseeds = subseed
    else:
        p.all_subseeds = [int(subseed) + x for x in range(len(p.all_prompts))]


def _task(p: Any) -> str:
    return "img2img" if isinstance(p, processing.StableDiffusionProcessingImg2Img) else "txt2img"


def _show(job: Job, p: Any, client: SDCloudClient) -> None:
    """Remote progress into the WebUI's own progress bar."""
    state = shared.state
    progress = job.progress
    n_iter = progress.n_iter or p.n_iter
    state.job_count = max(int(n_iter), 1)
    state.job_no = min(progress.iteration, state.job_count - 1) if progress.phase != "done" else state.job_count
    state.sampling_steps = progress.steps or p.steps
    state.sampling_step = progress.step
    if n_iter > 1:
        state.job = f"Batch {progress.iteration + 1} out of {n_iter}"
    state.textinfo = f"SD Cloud · {job.endpoint or 'cloud'} · {progress_text(job)}"
    _show_preview(progress, client)


_preview_shown: dict[str, int] = {}  # preview URL path → step shown, so each preview loads once


def _show_preview(progress: Any, client: SDCloudClient) -> None:
    """The engine's live preview into the WebUI's own live-preview slot (``current_image``)."""
    if not progress.preview_url or progress.preview_step <= 0:
        return
    key = progress.preview_url.split("?", 1)[0]
    if _preview_shown.get(key, 0) >= progress.preview_step:
        return
    try:
        image = client.fetch_image(progress.preview_url)
    except Exception:  # a preview is a nicety: never let it break the generation
        log.debug("live preview not fetched", exc_info=True)
        return
    _preview_shown.clear()
    _preview_shown[key] = progress.preview_step
    shared.state.assign_current_image(image)
    shared.state.current_image_sampling_step = progress.preview_step


def _skip_pressed() -> bool:
    if shared.state.skipped:
        shared.state.skipped = False  # the WebUI clears it at the next batch; we pass it on now
        return True
    return False


def _run_in_cloud(p: Any, choice: CloudChoice, checkpoint_override: str) -> Any:
    task = _task(p)
    if not choice.checkpoint:
        raise CloudRefused("SD Cloud: pick a cloud checkpoint (Cloud accordion → Cloud checkpoint → Refresh)")
    _resolve_like_the_webui(p)
    opts = shared.opts
    settings = {k: getattr(opts, k, None) for k in ("CLIP_stop_at_last_layers", "eta_noise_seed_delta",
                                                     "face_restoration", "tiling", "show_progress_every_n_steps")}
    if not getattr(opts, "live_previews_enable", True):
        settings["show_progress_every_n_steps"] = 0  # the engine then makes no previews at all
    payload = build_payload(p, task, settings, override_settings=with_cloud_vae(p.override_settings, choice.vae))
    state = shared.state
    if state.job_count == -1:
        state.job_count = p.n_iter
    if state.interrupted or state.stopping_generation:
        return _processed(p, [], [], None)
    try:
        client = get_client()
        state.textinfo = "SD Cloud · submitting"
        control = JobControl(cancel_requested=lambda: state.interrupted or state.stopping_generation,
                             skip_requested=_skip_pressed)
        job: Job | None = None
        for job in follow_job(client, task, payload, choice.checkpoint, choice.endpoint or None,
                              timeout=float(_opt("sdcloud_job_timeout", DEFAULT_GENERATION_TIMEOUT_S)),
                              control=control):
            _show(job, p, client)
        assert job is not None
        if job.status == "failed":
            message = job.error.message if job.error else "the job failed"
            raise RuntimeError(f"SD Cloud job {job.id} failed: {message}")
        pictures = [client.fetch_image(image) for image in job.images]
    except (RuntimeError, CloudRefused):
        raise
    except ValidationFailed as exc:
        # The middleware refused what only it can check (an unknown LoRA or VAE, a checkpoint it
        # does not have): the same message as a refusal the contract makes here, not an error.
        raise CloudRefused(f"SD Cloud cannot run this generation — {describe_error(exc)}") from None
    except Exception as exc:  # endpoint down, key refused, ...: one readable line in the WebUI
        raise RuntimeError(f"SD Cloud: {describe_error(exc)}") from None
    return _processed(p, pictures, _infotexts(job, choice, len(pictures)), job)


def _infotexts(job: Job, choice: CloudChoice, count: int) -> list[str]:
    ran = CloudChoice(True, job.endpoint or choice.endpoint, job.checkpoint or choice.checkpoint)
    value = infotext_utils.quote(ran.infotext_value())
    texts = []
    for i in range(count):
        text = job.result.infotext(i) if job.result else ""
        if f"{INFOTEXT_KEY}:" not in text:
            text = f"{text}, {INFOTEXT_KEY}: {value}" if text else f"{INFOTEXT_KEY}: {value}"
        texts.append(text)
    return texts


def _processed(p: Any, pictures: list[Any], infotexts: list[str], job: Job | None) -> Any:
    """A real Processed, the images saved and the grid made as the WebUI's options say."""
    opts = shared.opts
    info = job.result.info_dict if job is not None and job.result else {}
    p.sd_model_name = info.get("sd_model_name") or (job.checkpoint if job else None)
    p.sd_model_hash = info.get("sd_model_hash")
    seeds = list(info.get("all_seeds") or p.all_seeds)
    save_samples = p.save_samples()
    for i, image in enumerate(pictures):
        p.batch_index = i % max(p.batch_size, 1)
        p.iteration = i // max(p.batch_size, 1)
        seed = seeds[i] if i < len(seeds) else p.all_seeds[min(i, len(p.all_seeds) - 1)]
        prompt = p.all_prompts[min(i, len(p.all_prompts) - 1)]
        if opts.enable_pnginfo:
            image.info["parameters"] = infotexts[i]
        if save_samples:
            images.save_image(image, p.outpath_samples, "", seed, prompt, opts.samples_format, info=infotexts[i], p=p)
    output, texts, first = list(pictures), list(infotexts), 0
    unwanted_grid = len(output) < 2 and opts.grid_only_if_multiple
    if (opts.return_grid or opts.grid_save) and not p.do_not_save_grid and not unwanted_grid:
        grid = images.image_grid(output, p.batch_size)
        grid_text = infotexts[0]
        if opts.return_grid:
            texts.insert(0, grid_text)
            if opts.enable_pnginfo:
                grid.info["parameters"] = grid_text
            output.insert(0, grid)
            first = 1
        if opts.grid_save:
            images.save_image(grid, p.outpath_grids, "grid", p.all_seeds[0], p.all_prompts[0], opts.grid_format,
                              info=grid_text, short_filename=not opts.grid_extended_filename, p=p, grid=True)
    kwargs: dict[str, Any] = {}
    if "extra_images_list" in inspect.signature(processing.Processed).parameters:  # Forge
        kwargs["extra_images_list"] = list(getattr(p, "extra_result_images", None) or [])
    res = processing.Processed(p, output, seed=p.all_seeds[0], info=texts[0] if texts else "",
                               subseed=p.all_subseeds[0], index_of_first_image=first, infotexts=texts, **kwargs)
    if p.scripts is not None:
        p.scripts.postprocess(p, res)
    return res


# ---- the Script ----------------------------------------------------------------------------------


class SDCloudScript(scripts.Script):
    """The Cloud accordion in txt2img and img2img; its args: [on/off, endpoint, checkpoint, cloud VAE]."""

    def title(self) -> str:
        return TITLE

    def show(self, is_img2img: bool) -> Any:
        return scripts.AlwaysVisible

    def ui(self, is_img2img: bool) -> list[Any]:
        from .ui.accordion import build_cloud_accordion

        accordion = build_cloud_accordion(self.elem_id, get_client, str(_opt("sdcloud_default_endpoint", "")))
        self.infotext_fields = accordion_paste_fields(accordion)
        return accordion.script_args

    def before_process(self, p: Any, *args: Any) -> None:
        before_process(self, p, *args)


def accordion_paste_fields(accordion: Any) -> list[tuple[Any, Callable[[dict[str, Any]], Any]]]:
    """The WebUI paste fields of a Cloud accordion: pasting an infotext ("Send to txt2img", PNG
    Info) turns Cloud on with its endpoint and checkpoint when the infotext names them, off when not."""
    return [
        (accordion.enabled, lambda d: INFOTEXT_KEY in d),
        (accordion.endpoint, _pasted(0)),
        (accordion.checkpoint, _pasted(1)),
    ]


def _pasted(index: int) -> Callable[[dict[str, Any]], Any]:
    def value(params: dict[str, Any]) -> Any:
        if INFOTEXT_KEY not in params:
            return None
        return parse_infotext_value(params[INFOTEXT_KEY])[index] or None

    return value
