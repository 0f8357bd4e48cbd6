"""The `ModelProvider` conformance suite: written once, run against every provider by
subclassing (see `tests/delegation/test_providers.py`). A subclass supplies
`make_provider(timer)` and `check_answer(prompt, result)`, which checks the answer against
ground truth read another way: hand labels, what a runner wrote down, what the chat server
recorded and sent."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import pytest

from delegation.errors import ProviderInputError
from delegation.providers.base import Health, ModelProvider, ModelResult
from delegation.testing.clock import FakeTimer


class ModelProviderTests:
    """Conformance suite for `ModelProvider`; subclass it once per implementation.

    Subclasses set `prompts` (at least one) and implement `make_provider` and `check_answer`.
    The provider made must be healthy.
    """

    prompts: ClassVar[tuple[str, ...]] = ()
    params: ClassVar[Mapping[str, Any]] = {}
    """Extra parameters passed to each `infer` (must be accepted by the provider)."""

    def make_provider(self, timer: Callable[[], float] = time.perf_counter) -> ModelProvider:
        """Return a healthy provider that measures latency with `timer`."""
        raise NotImplementedError

    def check_answer(self, prompt: str, result: ModelResult) -> None:
        """Assert that `result` is the right answer to `prompt`, by an independent source."""
        raise NotImplementedError

    @pytest.fixture
    def provider(self) -> ModelProvider:
        return self.make_provider()

    def test_has_prompts(self) -> None:
        assert self.prompts, "a conformance subclass must set prompts"

    def test_satisfies_protocol(self, provider: ModelProvider) -> None:
        assert isinstance(provider, ModelProvider)
        assert isinstance(provider.id, str) and provider.id
        assert isinstance(provider.cost_per_call, float) and provider.cost_per_call >= 0
        assert isinstance(provider.capabilities, tuple)
        assert all(isinstance(c, str) and c for c in provider.capabilities)

    def test_healthy_provider_says_so(self, provider: ModelProvider) -> None:
        health = provider.health()
        assert isinstance(health, Health)
        assert health.ok, health.reason
        assert isinstance(health.reason, str)

    def test_answers_match_ground_truth(self, provider: ModelProvider) -> None:
        for prompt in self.prompts:
            self.check_answer(prompt, provider.infer(prompt, **self.params))

    def test_result_reports_provider_and_cost(self, provider: ModelProvider) -> None:
        result = provider.infer(self.prompts[0], **self.params)
        assert isinstance(result, ModelResult)
        assert result.provider_id == provider.id
        assert result.cost == provider.cost_per_call
        assert isinstance(result.text, str)

    def test_latency_comes_from_the_injected_timer(self) -> None:
        timer = FakeTimer(step=0.25)
        provider = self.make_provider(timer)
        before = timer.now
        result = provider.infer(self.prompts[0], **self.params)
        reads = round((timer.now - before) / timer.step)
        # The provider read the timer at least twice and reports a whole number of steps
        # between two of its reads, never more than the steps that passed.
        assert reads >= 2
        steps = result.latency_s / timer.step
        assert steps == round(steps) and 1 <= steps <= reads - 1

    def test_non_string_prompt_is_rejected(self, provider: ModelProvider) -> None:
        with pytest.raises(ProviderInputError) as info:
            provider.infer(12345)  # type: ignore[arg-type]
        assert isinstance(info.value, TypeError)
        assert provider.id in str(info.value)

    def test_unknown_parameter_is_rejected(self, provider: ModelProvider) -> None:
        with pytest.raises(ProviderInputError, match="no_such_parameter"):
            provider.infer(self.prompts[0], no_such_parameter=1)

    def test_empty_prompt_gives_a_text_result(self, provider: ModelProvider) -> None:
        result = provider.infer("", **self.params)
        assert isinstance(result.text, str)

    def test_concurrent_calls_each_get_their_own_answer(self, provider: ModelProvider) -> None:
        prompts = list(self.prompts) * 4
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda p: provider.infer(p, **self.params), prompts))
        for prompt, result in zip(prompts, results):
            self.check_answer(prompt, result)
