"""The delegation engine: decides where each RTFS call runs, and runs it there.

    runtime = delegation.Runtime(delegation.load_config("delegation.toml"), environ=os.environ)
    result = runtime.run_file("plan.rtfs")   # .value, .values, .calls, .functions

Submodules: `runtime` (the embedded engine around one VM), `engine` (decisions and their
wrappers), `router` (the VM's CallRouter: decide, execute, record), `context`, `targets`,
`metadata`, `config` (`delegation.toml`), `routes`, `l1` (the plan cache), `health`,
`learning`, `codelib` (RTFS code in L4), `providers` (models, local and remote), `errors`,
`cli`, and `testing` (conformance suites and test peers, for tests only).
"""

from __future__ import annotations

from delegation.config import DelegationConfig, default_config, load_config, parse_config
from delegation.errors import DelegationError
from delegation.runtime import RunResult, Runtime
from delegation.targets import ExecTarget, L4CacheHit, LocalModel, LocalPure, RemoteModel

__all__ = [
    "DelegationConfig",
    "DelegationError",
    "ExecTarget",
    "L4CacheHit",
    "LocalModel",
    "LocalPure",
    "RemoteModel",
    "RunResult",
    "Runtime",
    "default_config",
    "load_config",
    "parse_config",
]
