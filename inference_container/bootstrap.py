"""The one place where the container's parts are chosen and wired, and the `serve` entry point."""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import threading
from pathlib import Path

from inference_container.app import EngineState, create_app
from inference_container.engine.facade import Engine
from inference_container.engine.types import ModelRef
from inference_container.outputs import open_output_store
from inference_container.settings import ContainerSettings, SettingsError

log = logging.getLogger("inference_container")


def build(settings: ContainerSettings) -> tuple[object, Engine, EngineState]:
    from inference_container.engine.checkpoint import PipelineLoader
    from inference_container.models.cache import ModelCache
    from inference_container.models.fetchers import FileFetcher, S3Fetcher
    from inference_container.s3 import LazyClient, make_client

    if settings.torch_threads > 0:
        import torch

        torch.set_num_threads(settings.torch_threads)
    # One client (thread-safe) for models and outputs, made only when something reads or writes S3.
    s3_client = LazyClient(lambda: make_client(settings.s3_endpoint_url))
    fetchers = {"file": FileFetcher(settings.file_model_roots), "s3": S3Fetcher(s3_client, settings.model_buckets)}
    cache = ModelCache(settings.model_cache_dir, settings.model_cache_bytes, fetchers=fetchers)
    loader = PipelineLoader(max_cached=settings.pipelines_in_memory, allow_pickle=settings.allow_pickle,
                            work_dir=settings.engine_cache_dir, tokenizer_dir=settings.clip_tokenizer_dir)
    output_store = open_output_store(settings.output_store, s3_client=s3_client)
    engine = Engine(cache, loader, output_store=output_store)
    state = EngineState()
    app = create_app(engine, max_waiting=settings.max_waiting, max_body_bytes=settings.max_body_bytes,
                     state=state, output_store=output_store, marker_poll_s=settings.marker_poll_s,
                     progress_publish_s=settings.progress_publish_s)
    return app, engine, state


def local_model_ref(path: Path) -> ModelRef:
    """A reference to a checkpoint on this machine, hashed the way the middleware hashes it."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(8 * 1024 * 1024), b""):
            digest.update(block)
    return ModelRef(name=path.name, uri=path.resolve().as_uri(), sha256=digest.hexdigest(),
                    size=path.stat().st_size)


def start_warmup(engine: Engine, state: EngineState, preload: Path | None) -> threading.Thread:
    """Load the preload checkpoint (if any) in the background; /ping turns 200 when done."""

    def warm() -> None:
        try:
            if preload is not None:
                ref = local_model_ref(preload)
                engine.load_model_ref(ref)
                log.info("preloaded %s", preload.name)
            state.ready.set()
        except Exception as exc:  # reported through /ping so SageMaker replaces the instance
            log.exception("start-up failed")
            state.failure = f"start-up failed: {exc}"

    thread = threading.Thread(target=warm, name="warmup", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="serve", description="SD Cloud inference container (SageMaker contract)")
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None, help="default: $SAGEMAKER_BIND_TO_PORT or 8080")
    parser.add_argument("--preload", type=Path, default=None, help="checkpoint to load before /ping turns 200")
    args, _unknown = parser.parse_known_args(argv)  # SageMaker passes "serve" as an argument
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = ContainerSettings.from_env(host=args.host, port=args.port, preload_checkpoint=args.preload)
        app, engine, state = build(settings)
    except SettingsError as exc:
        sys.exit(f"SD Cloud inference container cannot start: {exc}")
    start_warmup(engine, state, settings.preload_checkpoint)
    print(f"SD Cloud inference container listening on http://{settings.host}:{settings.port}", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)
