"""The storage command line.

    python -m storage put FILE --store URI          store a file, print its blob id (last line)
    python -m storage get ID --store URI [-o OUT]   write a blob's raw bytes to stdout or OUT
    python -m storage ls --store URI [--interface H]  list blob ids, or an interface's versions
    python -m storage publish FILE --interface H --source H --store URI   sign and publish
    python -m storage lookup (--interface H [--pin ID] | --source H) --store URI [-o OUT]
    python -m storage keys generate --out FILE      make an Ed25519 signing key
    python -m storage keys public FILE              print a key file's public key and key id

Errors (missing or corrupted blob, lookup miss, unreachable store, bad argument) print one
line on stderr and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from storage.errors import StorageError
from storage.index import L4Index
from storage.l4 import open_l4
from storage.records import IndexRecord
from storage.registry import open_store
from storage.signing import (
    key_id_of,
    load_key_list,
    load_private_key,
    public_key_hex,
    save_private_key,
)


class CommandFailed(Exception):
    """A command that cannot do what was asked (printed as one line)."""


def _byte_count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        required=True,
        metavar="URI",
        help="memory://, file:///dir, s3://bucket/prefix or ipfs://",
    )
    parser.add_argument("--cache-dir", metavar="DIR", help="local tier in front of the store")
    parser.add_argument("--cache-max-bytes", type=_byte_count, default=256 << 20, metavar="N")


def _key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--signing-key", metavar="PEM", help="default: per-store key")
    parser.add_argument("--trusted-keys", metavar="FILE", help="public keys, one per line")
    parser.add_argument("--revoked-keys", metavar="FILE", help="keys or key ids, one per line")
    parser.add_argument("--state-dir", metavar="DIR", help="per-store keys (./.rtfs-state)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m storage`."""
    parser = argparse.ArgumentParser(prog="python -m storage", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log refused records")
    sub = parser.add_subparsers(dest="command", required=True)
    put = sub.add_parser("put", help="store a file ('-' for stdin); print its blob id")
    put.add_argument("file")
    get = sub.add_parser("get", help="write a blob's bytes to stdout")
    get.add_argument("blob_id")
    get.add_argument("-o", "--output", metavar="FILE")
    ls = sub.add_parser("ls", help="list blob ids, or the versions of an interface")
    ls.add_argument("--interface", metavar="HASH")
    publish = sub.add_parser("publish", help="store a file and a signed index record")
    publish.add_argument("file")
    publish.add_argument("--interface", required=True, metavar="HASH")
    publish.add_argument("--source", required=True, metavar="HASH")
    lookup = sub.add_parser("lookup", help="write the newest trusted version's bytes")
    which = lookup.add_mutually_exclusive_group(required=True)
    which.add_argument("--interface", metavar="HASH")
    which.add_argument("--source", metavar="HASH")
    lookup.add_argument("--pin", metavar="BLOB_ID", help="only this blob id")
    lookup.add_argument("-o", "--output", metavar="FILE")
    for command in (put, get, ls, publish, lookup):
        _store_options(command)
    for command in (ls, publish, lookup):
        _key_options(command)
    keys = sub.add_parser("keys", help="signing keys").add_subparsers(dest="keys", required=True)
    keys.add_parser("generate", help="write a new private key").add_argument("--out", required=True)
    keys.add_parser("public", help="print a key file's public key").add_argument("file")
    return parser


def _open(args: argparse.Namespace) -> Any:
    return open_store(args.store, cache_dir=args.cache_dir, cache_max_bytes=args.cache_max_bytes)


def _open_index(args: argparse.Namespace) -> L4Index:
    return open_l4(
        _open(args),
        signing_key=args.signing_key,
        trusted_keys=load_key_list(args.trusted_keys) if args.trusted_keys else (),
        revoked_keys=load_key_list(args.revoked_keys) if args.revoked_keys else (),
        state_dir=args.state_dir,
    )


def _read_input(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as e:
        raise CommandFailed(f"cannot read {name}: {e.strerror or e}") from None


def _write_output(data: bytes, output: str | None) -> None:
    if output is None:
        out: BinaryIO = sys.stdout.buffer
        out.write(data)
        out.flush()
        return
    try:
        Path(output).write_bytes(data)
    except OSError as e:
        raise CommandFailed(f"cannot write {output}: {e.strerror or e}") from None


def _describe(record: IndexRecord) -> str:
    return (
        f"interface={record.interface_hash} source={record.source_hash} "
        f"blob={record.blob_id} size={record.size} key={record.key_id} "
        f"created_at={record.created_at:.6f} pointer={record.pointer}"
    )


def cmd_put(args: argparse.Namespace) -> None:
    print(_open(args).put(_read_input(args.file)))


def cmd_get(args: argparse.Namespace) -> None:
    _write_output(_open(args).get(args.blob_id), args.output)


def cmd_ls(args: argparse.Namespace) -> None:
    if args.interface is None:
        for blob_id in sorted(_open(args).iterate()):
            print(blob_id)
        return
    index = _open_index(args)
    for record in index.versions(args.interface):
        print(f"{index.keyring.status(record.key_id):9} {_describe(record)}")


def cmd_publish(args: argparse.Namespace) -> None:
    record = _open_index(args).publish(args.interface, args.source, _read_input(args.file))
    print(_describe(record))
    print(record.blob_id)


def cmd_lookup(args: argparse.Namespace) -> None:
    index = _open_index(args)
    if args.interface is not None:
        found = index.lookup_interface(args.interface, args.pin)
    else:
        if args.pin is not None:
            raise CommandFailed("--pin applies to --interface lookups only")
        found = index.lookup_source(args.source)
    if found is None:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(index.stats().misses.items()))
        raise CommandFailed(f"no trusted version found ({reasons})")
    _write_output(found.data, args.output)


def cmd_keys(args: argparse.Namespace) -> None:
    if args.keys == "generate":
        key = Ed25519PrivateKey.generate()
        try:
            save_private_key(key, args.out)
        except OSError as e:
            raise CommandFailed(f"cannot write {args.out}: {e.strerror or e}") from None
    else:
        key = load_private_key(args.file)
    print(f"key id:     {key_id_of(key.public_key())}")
    print(f"public key: {public_key_hex(key)}")


COMMANDS = {
    "put": cmd_put,
    "get": cmd_get,
    "ls": cmd_ls,
    "publish": cmd_publish,
    "lookup": cmd_lookup,
    "keys": cmd_keys,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit status (0 ok, 1 failure, 2 usage)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        format="%(levelname)s %(name)s: %(message)s",
        level=logging.INFO if args.verbose else logging.ERROR,
    )
    try:
        COMMANDS[args.command](args)
    except (StorageError, CommandFailed) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1
    return 0
