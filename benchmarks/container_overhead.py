"""Inference container on the tiny model, measured side by side in one run.

1. End to end: our POST /invocations (HTTP, validation, A1111 prompt conditioning, generation,
   infotext, PNG, base64) vs a bare diffusers pipeline call with identical settings, calls
   interleaved so both see the same machine noise. Target: ratio <= 1.10 at p50.
2. Cold start: process start -> first 200 from /ping, model preloaded.
3. Model switch: a job on a model never seen (fetch + verify + load) vs on a model whose pipeline
   is cached in memory, both vs a job on the model already active.

Run: .venv/bin/python benchmarks/container_overhead.py [--runs 15] [--size 128] [--steps 20]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import emit, median, note, percentile  # noqa: E402
from tools.local_processes import REPO, Service, backend_python, free_port, make_tiny_checkpoint  # noqa: E402


def model_ref(path: Path) -> dict:
    data = path.read_bytes()
    return {"name": path.name, "uri": path.as_uri(), "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def make_models(folder: Path, count: int) -> list[Path]:
    import subprocess

    paths = []
    for n in range(count):
        path = folder / f"tiny-{n}.safetensors"
        if n == 0:
            make_tiny_checkpoint(path)
        else:
            subprocess.run([backend_python(), "-m", "inference_container.tiny", str(path), "--seed", str(n)],  # noqa: S603
                           cwd=REPO, check=True, stdout=sys.stderr)
        paths.append(path)
    return paths


def start_container(folder: Path, preload: Path, tag: str) -> tuple[Service, str]:
    port = free_port()
    service = Service("container", [backend_python(), "-m", "inference_container.server", "--host", "127.0.0.1",
                                    "--port", str(port), "--preload", str(preload)],
                      f"http://127.0.0.1:{port}/ping", folder / f"container-{tag}.log",
                      env={"SDCLOUD_MODEL_CACHE_DIR": str(folder / f"cache-{tag}"), "HF_HUB_OFFLINE": "1"})
    return service, f"http://127.0.0.1:{port}"


def cold_start(folder: Path, checkpoint: Path, runs: int) -> None:
    times = []
    for n in range(runs):
        service, _ = start_container(folder, checkpoint, f"cold{n}")
        started = time.monotonic()
        service.start()
        service.wait_ready(300)
        times.append(time.monotonic() - started)
        service.stop()
    emit("container_cold_start", unit="s", p50=round(median(times), 3), runs=runs,
         samples=[round(t, 3) for t in times], what="process start -> first 200 from /ping, tiny model preloaded")


def end_to_end_vs_bare(url: str, checkpoint: Path, runs: int, size: int, steps: int) -> None:
    import torch

    from inference_container.bootstrap import local_model_ref
    from inference_container.engine.checkpoint import PipelineLoader

    ref = local_model_ref(checkpoint)
    pipe = PipelineLoader().load(checkpoint, ref).txt2img
    from diffusers import EulerAncestralDiscreteScheduler

    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    prompt, negative = "a lighthouse on a cliff at dusk, oil painting", "blurry, low quality"
    job = {"id": "bench", "task": "txt2img", "models": {"checkpoint": model_ref(checkpoint)},
           "payload": {"prompt": prompt, "negative_prompt": negative, "steps": steps, "width": size,
                       "height": size, "cfg_scale": 7, "sampler_name": "Euler a", "seed": 1}}

    def bare() -> float:
        started = time.perf_counter()
        pipe(prompt=prompt, negative_prompt=negative, num_inference_steps=steps, guidance_scale=7.0,
             width=size, height=size, generator=torch.Generator("cpu").manual_seed(1), output_type="pil")
        return time.perf_counter() - started

    def ours(n: int) -> float:
        job["id"] = f"bench-{n}"
        started = time.perf_counter()
        response = requests.post(f"{url}/invocations", json=job, timeout=600)
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        return elapsed

    for n in range(2):  # warm both sides: first calls pay one-off allocations
        bare()
        ours(-n - 1)
    bare_times, our_times = [], []
    for n in range(runs):
        bare_times.append(bare())
        our_times.append(ours(n))
    ratio = median(our_times) / median(bare_times)
    emit("invocation_vs_bare_diffusers", unit="s", size=f"{size}x{size}", steps=steps, runs=runs,
         ours_p50=round(median(our_times), 4), bare_p50=round(median(bare_times), 4),
         ours_p90=round(percentile(our_times, 0.9), 4), bare_p90=round(percentile(bare_times, 0.9), 4),
         ratio_p50=round(ratio, 3), target_ratio=1.10, met=ratio <= 1.10)


def model_switch(url: str, models: list[Path], size: int) -> None:
    def run(path: Path, n: int) -> float:
        job = {"id": f"switch-{n}", "task": "txt2img", "models": {"checkpoint": model_ref(path)},
               "payload": {"prompt": "a cat", "steps": 1, "width": size, "height": size, "seed": 3}}
        started = time.perf_counter()
        requests.post(f"{url}/invocations", json=job, timeout=600).raise_for_status()
        return time.perf_counter() - started

    base, others = models[0], models[1:]
    same, uncached, cached = [], [], []
    n = 0
    run(base, n)
    for other in others:
        n += 1
        same.append(run(base, n))  # model already active
        n += 1
        uncached.append(run(other, n))  # never seen: fetch + sha256 + load
        n += 1
        cached.append(run(base, n))  # back to a pipeline kept in memory
    emit("model_switch", unit="s", runs=len(others), same_model_p50=round(median(same), 4),
         uncached_p50=round(median(uncached), 4), cached_p50=round(median(cached), 4),
         uncached_extra_p50=round(median(uncached) - median(same), 4),
         cached_extra_p50=round(median(cached) - median(same), 4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cold-runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = make_models(folder, 4)
        note("measuring cold start ...")
        cold_start(folder, models[0], args.cold_runs)
        service, url = start_container(folder, models[0], "warm")
        service.start()
        try:
            service.wait_ready(300)
            note("measuring /invocations vs bare diffusers ...")
            end_to_end_vs_bare(url, models[0], args.runs, args.size, args.steps)
            note("measuring model switch ...")
            model_switch(url, models, args.size)
        finally:
            service.stop()


if __name__ == "__main__":
    main()
