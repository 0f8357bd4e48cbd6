"""Test support for remote steps: an L4 store where publishers with their own keys publish
functions, and the configuration of a node that trusts some of those keys."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from delegation.config import DelegationConfig, parse_config
from delegation.runtime import Runtime
from storage import open_l4
from storage.signing import public_key_hex


@dataclass(frozen=True)
class Published:
    """A function published in L4: what an L4 reference names it by."""

    name: str
    interface: str
    blob: str


class Fleet:
    """One shared `file://` L4 store, a trusted publisher, an untrusted one and a revoked
    one, and the configuration of the node that runs the steps."""

    def __init__(self, root: Path, *, sensitive: tuple[str, ...] = ()) -> None:
        self.root = root
        self.store = (root / "l4").as_uri()
        self.trusted, self.untrusted, self.revoked = (Ed25519PrivateKey.generate()
                                                      for _ in range(3))
        self.sensitive = sensitive

    def config_text(self) -> str:
        patterns = ", ".join(f'"{p}"' for p in self.sensitive)
        return f"""
[delegation.static_routes]
"tone" = "local-sentiment-rules"

[delegation.local_models.sentiment-rules]
kind = "sentiment-rules"

[delegation.security]
sensitive = [{patterns}]

[delegation.l4]
store = "{self.store}"
trusted_keys = ["{public_key_hex(self.trusted)}", "{public_key_hex(self.revoked)}"]
revoked_keys = ["{public_key_hex(self.revoked)}"]
"""

    def node_config(self) -> DelegationConfig:
        """The executing node's configuration (its own state directory: no key of its own
        was ever made there, so it trusts exactly the listed keys)."""
        return parse_config(self.config_text(), base_dir=self.root,
                            state_dir=self.root / "node-state")

    def publish(self, source: str, name: str, key: Ed25519PrivateKey) -> Published:
        """Compile `source` (which defines `name`) and publish it signed with `key`."""
        config = parse_config(f'[delegation.l4]\nstore = "{self.store}"\n',
                              base_dir=self.root, state_dir=self.root / "publisher-state")
        runtime = Runtime(config, l4_index=open_l4(self.store, signing_key=key))
        runtime.run(source)
        code = runtime.vm.globals[name].code
        [record] = [r for r in runtime.library.index.versions(code.interface_hash_hex())
                    if r.source_hash == code.source_hash_hex()]
        return Published(name, record.interface_hash, record.blob_id)
