"""The middleware path on loopback, with the instant fake container standing in for the GPU.

1. Path overhead: client submit -> PNG on the client's disk, over >= 100 sequential jobs. The fake
   container answers at once, so the whole time is our overhead (middleware, blob store, local
   compute adapter, long-poll, signed download). Targets: p50 <= 50 ms, p99 <= 250 ms.
2. Completion -> client knows: the job's terminal timestamp to the moment the waiting client
   returns, long-poll vs a 1 s polling baseline measured in the same run, with the fake container
   taking 300 ms per job so the client is waiting when the job ends. Target: p50 <= 100 ms.
3. Sustained submissions per second (POST /v1/inferences answered 202) from concurrent clients.
   Target: >= 200/s on a 2-core machine.

Run: .venv/bin/python benchmarks/middleware_path.py [--jobs 120] [--latency-jobs 30]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import emit, median, note, percentile  # noqa: E402
from sdcloud.client import SDCloudClient  # noqa: E402
from tools.local_processes import LocalStack  # noqa: E402

PAYLOAD = {"prompt": "a lighthouse", "steps": 2, "width": 64, "height": 64, "seed": 1}


def completion_time(job) -> float:
    return datetime.fromisoformat(job.updated_at).timestamp()


def path_overhead(client: SDCloudClient, checkpoint: str, jobs: int, out: Path) -> None:
    times = []
    for n in range(jobs + 3):
        started = time.perf_counter()
        job = client.submit_inference("txt2img", PAYLOAD, checkpoint)
        job = client.wait_for(job.id, timeout=60)
        client.download_image(job.result.images[0], out / f"{n}")
        elapsed = time.perf_counter() - started
        if n >= 3:  # the first jobs warm connections and caches
            times.append(elapsed * 1000)
    p50, p99 = percentile(times, 0.5), percentile(times, 0.99)
    emit("path_overhead", unit="ms", jobs=jobs, p50=round(p50, 2), p99=round(p99, 2), max=round(max(times), 2),
         target_p50=50, target_p99=250, met=p50 <= 50 and p99 <= 250,
         what="client submit -> PNG on disk, fake container answering at once")


def notify_delay(client: SDCloudClient, api_url: str, api_key: str, checkpoint: str, jobs: int) -> None:
    long_poll, polling = [], []
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {api_key}"
    for _ in range(jobs):
        job = client.submit_inference("txt2img", PAYLOAD, checkpoint)
        job = client.wait_for(job.id, timeout=60)
        long_poll.append((time.time() - completion_time(job)) * 1000)

        job = client.submit_inference("txt2img", PAYLOAD, checkpoint)
        while True:  # the baseline: what a client polling once a second sees
            body = session.get(f"{api_url}/v1/inferences/{job.id}", timeout=10).json()
            if body["status"] not in ("queued", "running"):
                break
            time.sleep(1.0)
        polling.append((time.time() - datetime.fromisoformat(body["updated_at"]).timestamp()) * 1000)
    emit("completion_to_client", unit="ms", jobs=jobs, long_poll_p50=round(median(long_poll), 2),
         long_poll_p99=round(percentile(long_poll, 0.99), 2), polling_1s_p50=round(median(polling), 2),
         ratio_p50=round(median(long_poll) / median(polling), 4), target_p50=100,
         met=median(long_poll) <= 100)


def submissions_per_second(api_url: str, api_key: str, checkpoint: str, seconds: float, threads: int) -> None:
    counts = [0] * threads
    errors = [0] * threads
    stop = threading.Event()

    def submitter(n: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {api_key}"
        body = {"task": "txt2img", "payload": PAYLOAD, "checkpoint": checkpoint}
        while not stop.is_set():
            response = session.post(f"{api_url}/v1/inferences", json=body, timeout=30)
            if response.status_code == 202:
                counts[n] += 1
            else:
                errors[n] += 1

    workers = [threading.Thread(target=submitter, args=(n,)) for n in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    rate = sum(counts) / elapsed
    emit("submissions_per_second", unit="1/s", rate=round(rate, 1), accepted=sum(counts), errors=sum(errors),
         seconds=round(elapsed, 2), client_threads=threads, target=200, met=rate >= 200)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=120)
    parser.add_argument("--latency-jobs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        checkpoint = folder / "models" / "bench.safetensors"
        checkpoint.parent.mkdir()
        checkpoint.write_bytes(b"not a real model: the fake container never reads it")
        with LocalStack(data_dir=folder / "data", checkpoint=checkpoint, fake_container=True,
                        with_ui=False) as stack:
            client = SDCloudClient(stack.api_url, stack.api_key)
            note("measuring path overhead ...")
            path_overhead(client, checkpoint.name, args.jobs, folder / "downloads")
            note("measuring completion -> client delay ...")
            # Jobs now take 300 ms, so the client is really waiting when they finish.
            requests.post(f"{stack.container_url}/_fake/config", json={"delay_s": 0.3}, timeout=5).raise_for_status()
            notify_delay(client, stack.api_url, stack.api_key, checkpoint.name, args.latency_jobs)
            note("measuring sustained submissions ...")
            submissions_per_second(stack.api_url, stack.api_key, checkpoint.name, args.seconds, args.threads)


if __name__ == "__main__":
    main()
