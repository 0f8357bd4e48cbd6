"""What the Ray layer adds to `delegation` (found through the `rtfs_delegation.extensions`
entry point): its subcommands, provider kinds and `[delegation.cluster]` table; for
federation, the `rtfs-peer` provider kind, the `[delegation.federation]` table and
`delegation peers`.

Registering must stay cheap and must not import Ray: the commands and factories import it
when they run.
"""

from __future__ import annotations

import argparse
from typing import Any

from cluster.config import CONFIG_SECTION, DEFAULT_NAMESPACE
from delegation.extensions import Command, Extensions, ProviderKindSpec, SharedState
from delegation.schema import Option, OptionType

RAY_RTFS_OPTIONS = {  # see cluster.rayrtfs
    "resources": Option(OptionType.STRING_LIST, default=(),
                        help="custom resources the node running a step must offer"),
    "namespace": Option(OptionType.STRING, default=DEFAULT_NAMESPACE,
                        help="the fleet whose step policy applies"),
}


def register(ext: Extensions) -> None:
    """Add the cluster's commands, provider kinds and config table to `ext`."""
    ext.add_config_section(CONFIG_SECTION)
    ext.add_command(Command("serve", "run a fleet's cache shards (a Ray head by default)",
                            _configure_serve, _run_serve))
    ext.add_command(Command("cache", "the fleet's shared caches", _configure_cache,
                            _run_cache))
    ext.set_cluster_connector(_connect)
    ext.add_provider_kind(ProviderKindSpec("ray-rtfs", RAY_RTFS_OPTIONS, _build_ray_rtfs))
    _register_federation(ext)


def _register_federation(ext: Extensions) -> None:
    from cluster.federation import CONFIG_SECTION as FEDERATION_SECTION
    from cluster.peers import provider_kind

    ext.add_config_section(FEDERATION_SECTION)
    ext.add_provider_kind(provider_kind(_ray_peers))
    ext.add_command(Command("peers", "the fleet's arbiters: what they advertise, their health",
                            _configure_peers, _run_peers))


def _ray_peers() -> Any:
    from cluster.actors import peer_transport

    return peer_transport()


def _configure_peers(parser: argparse.ArgumentParser) -> None:
    from cluster import peerscmd

    peerscmd.configure(parser)


def _run_peers(args: argparse.Namespace) -> int:
    from cluster import peerscmd

    return peerscmd.run(args)


def _configure_serve(parser: argparse.ArgumentParser) -> None:
    from cluster import serve

    serve.configure(parser)


def _run_serve(args: argparse.Namespace) -> int:
    from cluster import serve

    return serve.run(args)


def _configure_cache(parser: argparse.ArgumentParser) -> None:
    from cluster import cachecmd

    cachecmd.configure(parser)


def _run_cache(args: argparse.Namespace) -> int:
    from cluster import cachecmd

    return cachecmd.run(args)


def _connect(config: Any, address: str, *, environ: Any = None) -> SharedState:
    from cluster import connect

    return connect.connect(config, address, environ=environ)


def _build_ray_rtfs(cfg: Any, ctx: Any) -> Any:
    from cluster.rayrtfs import RayRTFSProvider

    return RayRTFSProvider(cfg.id, namespace=cfg.options["namespace"],
                           resources=tuple(cfg.options["resources"]), timeout_s=cfg.timeout_s,
                           health_ttl_s=cfg.health_ttl_s, cost_per_call=cfg.cost_per_call,
                           capabilities=cfg.capabilities, clock=ctx.clock, timer=ctx.timer)
