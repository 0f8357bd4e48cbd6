"""Extensions: how another package adds CLI subcommands and provider kinds to `delegation`.

`delegation` never imports the packages that extend it (the Ray layer in `cluster/` is one).
An extension is an entry point in the group `rtfs_delegation.extensions` naming a callable
`register(ext: Extensions) -> None`; `discover()` loads every one of them once per process.
A registered provider kind is accepted by the configuration (`kind = "<name>"` with the keys
it declares, validated like the built-in ones) and built by its factory; a registered command
becomes `delegation <name> ...`.

Importing an extension must be cheap: `register` records names and factories; heavy imports
(Ray) happen inside the command or the factory when it runs.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from delegation.schema import Option

ENTRY_POINT_GROUP = "rtfs_delegation.extensions"


@dataclass(frozen=True)
class ProviderKindSpec:
    """A kind of remote provider an extension adds.

    Args:
        name: the `kind = "..."` value.
        options: its keys beyond the common ones every remote provider has (`kind`,
            `timeout_s`, `cost_per_call`, `capabilities`, `health_ttl_s`, `api_key_env`).
        build: makes the provider from its validated config (a `RemoteProviderConfig`, whose
            `options` hold these keys) and a `BuildContext`.
    """

    name: str
    options: Mapping[str, Option]
    build: Callable[[Any, Any], Any]


@dataclass(frozen=True)
class ConfigSection:
    """A `[delegation.<name>]` table an extension adds; validated with `options` (key, line
    and type in every error like the rest of the file) into `DelegationConfig.sections[name]`,
    a read-only mapping with every option present (defaults filled in)."""

    name: str
    options: Mapping[str, Option]
    help: str = ""


@dataclass(frozen=True)
class Command:
    """A `delegation <name>` subcommand: `configure` adds its arguments, `run` returns the
    exit status (raise `delegation.errors.UsageError` for exit 2)."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


@dataclass
class SharedState:
    """What a connection to a fleet gives a runtime (`delegation run --cluster ADDR`).

    `plans` (a `PlanStore`), `learner`, `library`, `l2_store` (an `L2Store` the fleet shares:
    `shared = True`, so sensitive answers never go there) and `l3` (a `ContextualCache` that
    learns with the fleet) replace the runtime's local ones when not None; `federation` (a
    `delegation.federation.Federation`) lets calls that cannot run here go to the fleet's
    arbiters; `warnings` are printed once (one line each); `report(runtime)` is called once
    after the run (the fleet's metrics: decisions, cache tiers, breakers); `close` flushes and
    disconnects, and returns False when something it started could not be stopped (the
    process should then end without waiting on it).
    """

    plans: Any = None
    learner: Any = None
    library: Any = None
    l2_store: Any = None
    l3: Any = None
    federation: Any = None
    warnings: list[str] = field(default_factory=list)
    close: Callable[[], bool | None] = lambda: None
    report: Callable[[Any], None] = lambda runtime: None


ClusterConnector = Callable[..., SharedState]
"""`connect(config, address, *, environ) -> SharedState`; never raises for an unreachable
cluster (it returns local-only state and a warning instead)."""


@dataclass
class Extensions:
    """What the loaded extensions registered, and the ones that failed to load."""

    commands: dict[str, Command] = field(default_factory=dict)
    provider_kinds: dict[str, ProviderKindSpec] = field(default_factory=dict)
    sections: dict[str, ConfigSection] = field(default_factory=dict)
    cluster_connector: ClusterConnector | None = None
    problems: list[str] = field(default_factory=list)

    def set_cluster_connector(self, connect: ClusterConnector) -> None:
        """Register how `delegation run --cluster ADDR` connects to a fleet (one only)."""
        if self.cluster_connector is not None:
            raise ValueError("a cluster connector is registered twice")
        self.cluster_connector = connect

    def add_command(self, command: Command) -> None:
        """Register a subcommand; a second one with the same name is an error."""
        if command.name in self.commands:
            raise ValueError(f"delegation command {command.name!r} is registered twice")
        self.commands[command.name] = command

    def add_provider_kind(self, kind: ProviderKindSpec) -> None:
        """Register a provider kind; a second one with the same name is an error."""
        if kind.name in self.provider_kinds:
            raise ValueError(f"provider kind {kind.name!r} is registered twice")
        self.provider_kinds[kind.name] = kind


    def add_config_section(self, section: ConfigSection) -> None:
        """Register a `[delegation.<name>]` table; a second one with the same name is an
        error."""
        if section.name in self.sections:
            raise ValueError(f"config section {section.name!r} is registered twice")
        self.sections[section.name] = section


def load(points: Iterable[EntryPoint]) -> Extensions:
    """Run each entry point's `register`; a failing one is recorded in `problems`."""
    ext = Extensions()
    for point in sorted(points, key=lambda p: p.name):
        try:
            point.load()(ext)
        except Exception as err:  # an extension's bug must not take the CLI down
            ext.problems.append(f"extension {point.name!r} ({point.value}) failed to load: "
                                f"{type(err).__name__}: {err}")
    return ext


_lock = threading.Lock()
_discovered: Extensions | None = None


def discover() -> Extensions:
    """The extensions installed in this environment, loaded once per process."""
    global _discovered
    with _lock:
        if _discovered is None:
            _discovered = load(entry_points(group=ENTRY_POINT_GROUP))
        return _discovered


