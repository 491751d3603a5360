from __future__ import annotations

from dataclasses import dataclass

import pytest

from middleware.ports import User
from middleware.services.inferences import InferenceService
from middleware.services.job_events import JobEventHandler
from tests.fakes.memory_ports import FakeCompute, FakeNotifier, MemoryBlobStore, MemoryCatalog, MemoryJobStore


@dataclass
class World:
    store: MemoryJobStore
    blobs: MemoryBlobStore
    compute: FakeCompute
    catalog: MemoryCatalog
    notifier: FakeNotifier
    events: JobEventHandler
    inferences: InferenceService
    ann: User
    bob: User


@pytest.fixture
def world() -> World:
    store = MemoryJobStore()
    blobs = MemoryBlobStore()
    compute = FakeCompute()
    catalog = MemoryCatalog(("tiny-sd15.safetensors", "other.safetensors"))
    notifier = FakeNotifier()
    events = JobEventHandler(store, blobs, notifier, heartbeat_interval_s=2.0)
    inferences = InferenceService(store, blobs, catalog, compute, notifier, events, endpoint_names=("local",))
    return World(
        store,
        blobs,
        compute,
        catalog,
        notifier,
        events,
        inferences,
        User("ann", "artist"),
        User("bob", "artist"),
    )
