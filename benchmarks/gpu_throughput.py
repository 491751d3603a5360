"""Sampling speed of our engine vs plain diffusers on the same pipeline, and what channels_last
and torch.compile add. Meant for a GPU machine (SD 1.5 architecture with random weights, fp16,
512x512, 20 steps); `--arch tiny` runs the same code on the CPU with the tiny model.

Run: .venv/bin/python benchmarks/gpu_throughput.py [--arch sd15|tiny] [--size 512] [--steps 20]
     [--runs 5] [--no-compile]
Prints it/s (sampling steps per second, whole call included) per variant, and ratios to plain.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import emit, median, note  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=["sd15", "tiny"], default="sd15")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    args = parser.parse_args()

    import torch
    from diffusers import DPMSolverMultistepScheduler

    from inference_container.engine.architectures import CONFIG_ROOT
    from inference_container.engine.checkpoint import PipelineLoader
    from inference_container.engine.facade import Engine
    from inference_container.engine.request import parse_job
    from inference_container.engine.types import ModelRef
    from inference_container.tiny import write_random_checkpoint, write_tiny_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / f"{args.arch}-random.safetensors"
        note(f"writing a random {args.arch} checkpoint on {device} ...")
        if args.arch == "tiny":
            write_tiny_model(path)
        else:
            write_random_checkpoint(path, seed=0, config_dir=CONFIG_ROOT / "sd15",
                                    architecture="stable-diffusion-v1", device=device)
        data = path.read_bytes()
        ref = ModelRef(path.name, path.as_uri(), hashlib.sha256(data).hexdigest(), len(data))
        del data
        loader = PipelineLoader(work_dir=folder / "work")
        model = loader.load(path, ref)
        pipe = model.txt2img
        pipe.set_progress_bar_config(disable=True)
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(
            pipe.scheduler.config, algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=True)

        class _NoFetchCache:  # the model is already on disk and loaded: measure sampling only
            def use(self, _ref):
                from contextlib import nullcontext

                return nullcontext(path)

        engine = Engine(_NoFetchCache(), loader)
        prompt, negative = "a photo of a lighthouse at dusk, oil painting", "blurry"
        job = {"id": "gpu-bench", "task": "txt2img",
               "models": {"checkpoint": {"name": ref.name, "uri": ref.uri, "sha256": ref.sha256, "size": ref.size}},
               "payload": {"prompt": prompt, "negative_prompt": negative, "steps": args.steps, "width": args.size,
                           "height": args.size, "cfg_scale": 7, "sampler_name": "DPM++ 2M", "scheduler": "karras",
                           "seed": 1}}
        request = parse_job(job)

        def plain() -> float:
            sync()
            started = time.perf_counter()
            pipe(prompt=prompt, negative_prompt=negative, num_inference_steps=args.steps, guidance_scale=7.0,
                 width=args.size, height=args.size, generator=torch.Generator(device).manual_seed(1))
            sync()
            return time.perf_counter() - started

        def ours() -> float:
            sync()
            started = time.perf_counter()
            engine.run(request, lambda _progress: None)
            sync()
            return time.perf_counter() - started

        def measure(name: str, fn) -> float:
            fn()  # warm-up (and compilation, for the compiled variant)
            seconds = median([fn() for _ in range(args.runs)])
            emit("sampling_speed", variant=name, device=device, dtype=str(model.dtype).replace("torch.", ""),
                 arch=args.arch, size=f"{args.size}x{args.size}", steps=args.steps, runs=args.runs,
                 seconds_p50=round(seconds, 4), it_per_s=round(args.steps / seconds, 3))
            return seconds

        base = measure("diffusers_plain", plain)
        engine_s = measure("sdcloud_engine", ours)
        emit("engine_vs_plain", ratio_p50=round(engine_s / base, 3), target_ratio=1.10)
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
        channels_last = measure("diffusers_channels_last", plain)
        emit("channels_last_speedup", ratio=round(base / channels_last, 3))
        if not args.no_compile:
            pipe.unet = torch.compile(pipe.unet, mode="max-autotune-no-cudagraphs" if device == "cuda" else "default")
            compiled = measure("diffusers_channels_last_compiled", plain)
            emit("torch_compile_speedup", ratio=round(base / compiled, 3), note="unet compiled, after one warm-up call")


if __name__ == "__main__":
    main()
