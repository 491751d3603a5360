"""Several named endpoints behind one Compute port.

Each endpoint is its own Compute (locally: one LocalCompute, with its own worker threads, per
configured container). The router sends a job to the endpoint it names, a cancel to the endpoint
that has the job (and a skip), and lists every endpoint's state. It depends on the ports only, so it routes
between fakes in unit tests exactly as between real containers.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from middleware.ports import Compute, EndpointState

log = logging.getLogger(__name__)


class ManagedCompute(Compute, Protocol):
    """A Compute with worker threads to start and stop."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class UnknownEndpoint(ValueError):
    pass


class ComputeRouter:
    def __init__(
        self, endpoints: Sequence[tuple[str, ManagedCompute]], *, remember_jobs: int = 10_000
    ) -> None:
        if not endpoints:
            raise ValueError("at least one endpoint is needed")
        names = [name for name, _ in endpoints]
        if len(set(names)) != len(names):
            raise ValueError(f"endpoint names must be unique (got {', '.join(names)})")
        self._endpoints: dict[str, ManagedCompute] = dict(endpoints)
        self._names = tuple(names)
        # job id -> endpoint name, so a cancel reaches only the endpoint that has the job. Bounded:
        # finished jobs are never reported here, so the oldest entries are dropped.
        self._jobs: OrderedDict[str, str] = OrderedDict()
        self._remember = max(1, int(remember_jobs))
        self._lock = threading.Lock()

    @property
    def names(self) -> tuple[str, ...]:
        """The endpoints in configured order; the first is the default."""
        return self._names

    @property
    def default(self) -> str:
        return self._names[0]

    # -- Compute port ----------------------------------------------------------------------------

    def submit(self, job_id: str, request_key: str, endpoint: str | None = None) -> None:
        name = self.default if endpoint is None else endpoint
        target = self._endpoints.get(name)
        if target is None:
            raise UnknownEndpoint(
                f"endpoint {name!r} is not configured (configured: {', '.join(self._names)})"
            )
        with self._lock:
            self._jobs[job_id] = name
            self._jobs.move_to_end(job_id)
            while len(self._jobs) > self._remember:
                self._jobs.popitem(last=False)
        try:
            target.submit(job_id, request_key, endpoint=name)
        except BaseException:
            with self._lock:
                self._jobs.pop(job_id, None)
            raise

    def cancel(self, job_id: str) -> None:
        with self._lock:
            # Kept, not popped: the partial result of a cancelled job still arrives, and a
            # second cancel (or the sweeper's) must reach the same endpoint.
            name = self._jobs.get(job_id)
        if name is not None:
            self._endpoints[name].cancel(job_id)
            return
        # Not submitted through this router (or forgotten long ago): cancel is harmless where the
        # job is unknown, so every endpoint is told.
        for compute in self._endpoints.values():
            compute.cancel(job_id)

    def skip(self, job_id: str, iteration: int) -> None:
        with self._lock:
            name = self._jobs.get(job_id)
        targets = [self._endpoints[name]] if name is not None else list(self._endpoints.values())
        for compute in targets:
            compute.skip(job_id, iteration)

    def endpoints(self) -> list[EndpointState]:
        if len(self._endpoints) == 1:
            return self._states(self._names[0])
        # Asked side by side: one unreachable container must not make the listing wait for each.
        with ThreadPoolExecutor(max_workers=min(len(self._names), 16)) as pool:
            listings = list(pool.map(self._states, self._names))
        return [state for listing in listings for state in listing]

    def _states(self, name: str) -> list[EndpointState]:
        try:
            return list(self._endpoints[name].endpoints())
        except Exception as exc:  # noqa: BLE001 - a listing reports a broken endpoint, never a 500
            log.exception("endpoint %s could not report its state", name)
            return [EndpointState(name, "unknown", "OutOfService", f"could not ask endpoint {name!r}: {exc}")]

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        started: list[ManagedCompute] = []
        try:
            for compute in self._endpoints.values():
                compute.start()
                started.append(compute)
        except BaseException:
            for compute in started:
                compute.stop()
            raise

    def stop(self) -> None:
        for name, compute in self._endpoints.items():
            try:
                compute.stop()
            except Exception:  # noqa: BLE001 - the other endpoints still get stopped
                log.exception("endpoint %s did not stop cleanly", name)
