"""What the Ray layer adds to `delegation` (found through the `rtfs_delegation.extensions`
entry point): its subcommands, provider kinds and `[delegation.cluster]` table.

Registering must stay cheap and must not import Ray: the commands and factories import it
when they run.
"""

from __future__ import annotations

from delegation.extensions import Extensions


def register(ext: Extensions) -> None:
    """Add the cluster's commands, provider kinds and config table to `ext`."""
