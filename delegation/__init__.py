"""The delegation engine: decides where each RTFS call runs, and runs it there.

Submodules: `targets` (where a call runs), `metadata` (what the arbiter says about a call),
`config` (`delegation.toml`), `routes`, `l1` (the plan cache), `providers` (models, local and
remote), `errors`, and `testing` (conformance suites and test peers, for tests only).
"""

from __future__ import annotations

from delegation.config import DelegationConfig, default_config, load_config, parse_config
from delegation.errors import DelegationError
from delegation.targets import ExecTarget, L4CacheHit, LocalModel, LocalPure, RemoteModel

__all__ = [
    "DelegationConfig",
    "DelegationError",
    "ExecTarget",
    "L4CacheHit",
    "LocalModel",
    "LocalPure",
    "RemoteModel",
    "default_config",
    "load_config",
    "parse_config",
]
