"""Test support shipped with the package: conformance suites written once and run against
every implementation by subclassing, a real OpenAI-compatible chat server on 127.0.0.1, and
fake clocks. Product code never imports this package.

- `ModelProviderTests`: every `ModelProvider`.
- `PlanStoreTests`: every `PlanStore` (the local L1 cache, the cluster's sharded facade).
- `ChatServer`: speaks the chat-completions protocol, records what it receives.
- `FakeClock`, `FakeTimer`: injected clocks, so TTL and latency tests never sleep.
"""

from __future__ import annotations

from delegation.testing.chat import ChatServer, RecordedRequest
from delegation.testing.clock import FakeClock, FakeTimer
from delegation.testing.planstore import PlanStoreTests
from delegation.testing.providers import ModelProviderTests

__all__ = [
    "ChatServer",
    "FakeClock",
    "FakeTimer",
    "ModelProviderTests",
    "PlanStoreTests",
    "RecordedRequest",
]
