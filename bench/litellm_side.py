"""The LiteLLM side of `bench/bench_decide.py`, run in its own environment.

LiteLLM is not a dependency of the project: `bench_decide.py` creates a virtual environment
for it (`bench/.venv-litellm`, needs the package registry once) and starts this script there.
It reads a count per line on stdin, makes that many `Router.completion` calls with a mocked
response (no network), and answers one line of per-call nanoseconds, so the two sides can
alternate in rounds.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch at import

from litellm import Router  # noqa: E402

MESSAGES = [{"role": "user", "content": "hello"}]


def main() -> None:
    router = Router(model_list=[{
        "model_name": "bench",
        "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": "not-used",
                           "mock_response": "hi"},
    }])
    print("ready", flush=True)
    for line in sys.stdin:
        samples = []
        for _ in range(int(line)):
            start = time.perf_counter_ns()
            router.completion(model="bench", messages=MESSAGES)
            samples.append(time.perf_counter_ns() - start)
        print(" ".join(map(str, samples)), flush=True)


if __name__ == "__main__":
    main()
