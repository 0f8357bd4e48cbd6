"""Bytecode <-> bytes: deterministic canonical msgpack, and a decoder that trusts nothing.

`encode(code)` gives the same bytes for the same source, every time, on every machine (so
xxh3_128 of the bytes is a content address). `decode(data)` refuses anything malformed with
`BytecodeError` and hands the result to the verifier before returning it, so decoded code is
always safe to run.
"""

from __future__ import annotations

from typing import Any

from rtfs.bytecode import FORMAT_VERSION, Code, Op, Param, Site
from rtfs.canonical import T_CODE, packb, plain_to_value, unpackb, value_to_plain
from rtfs.errors import BytecodeError
from rtfs.hashing import hint_plain
from rtfs.values import EMPTY_MAP, DelegationHint, HintKind, Map

MAGIC = "rtfs-code"
MAX_CODE_NESTING = 32
_OPS = frozenset(int(op) for op in Op)


def encode(code: Code) -> bytes:
    """Canonical bytes of `code` and every function nested in it."""
    return packb([FORMAT_VERSION, MAGIC, _code_to_plain(code)])


def decode(data: bytes) -> Code:
    """Decode and verify bytes written by `encode`; raises BytecodeError otherwise."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BytecodeError("bytecode must be bytes")
    plain = unpackb(bytes(data))
    _expect(isinstance(plain, list) and len(plain) == 3, "not an RTFS bytecode container")
    _expect(plain[1] == MAGIC, "not RTFS bytecode (bad magic)")
    _expect(plain[0] == FORMAT_VERSION,
            f"bytecode format {plain[0]!r} is not the supported format {FORMAT_VERSION}")
    code = _code_from_plain(plain[2], 0)
    from rtfs.verify import verify

    verify(code)
    return code


def _code_to_plain(code: Code) -> list[Any]:
    return [
        code.name, code.qualname,
        [[p.name, p.type] for p in code.params],
        [code.rest.name, code.rest.type] if code.rest is not None else None,
        code.return_type,
        hint_plain(code.hint),
        code.nlocals,
        list(code.freevars),
        bytes(code.ops),
        list(code.args),
        [[T_CODE, _code_to_plain(c)] if isinstance(c, Code) else value_to_plain(c)
         for c in code.consts],
        list(code.names),
        [[s.argc, s.name, value_to_plain(s.meta) if s.meta else None] for s in code.sites],
        list(code.positions),
        code.source_hash,
        [[name, h] for name, h in code.deps],
    ]


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise BytecodeError(message)


def _is_str_or_none(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _ints(value: Any, what: str) -> tuple[int, ...]:
    _expect(isinstance(value, list) and all(type(v) is int for v in value),
            f"{what} must be a list of integers")
    return tuple(value)


def _param(value: Any) -> Param:
    _expect(isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and _is_str_or_none(value[1]), "malformed parameter")
    return Param(value[0], value[1])


def _code_from_plain(plain: Any, depth: int) -> Code:
    _expect(depth <= MAX_CODE_NESTING, "functions nested too deeply")
    _expect(isinstance(plain, list) and len(plain) == 16, "malformed code object")
    (name, qualname, params, rest, return_type, hint, nlocals, freevars, ops, args, consts,
     names, sites, positions, source_hash, deps) = plain
    _expect(isinstance(name, str) and isinstance(qualname, str), "malformed code name")
    _expect(isinstance(params, list), "malformed parameters")
    _expect(_is_str_or_none(return_type), "malformed return type")
    _expect(type(nlocals) is int, "malformed local count")
    _expect(isinstance(freevars, list) and all(isinstance(f, str) for f in freevars),
            "malformed free variables")
    _expect(isinstance(ops, bytes) and all(op in _OPS for op in ops), "unknown opcode")
    _expect(isinstance(names, list) and all(isinstance(n, str) for n in names),
            "malformed names")
    _expect(isinstance(consts, list), "malformed constants")
    _expect(source_hash is None or (isinstance(source_hash, bytes) and len(source_hash) == 16),
            "malformed source hash")
    _expect(isinstance(deps, list) and all(
        isinstance(d, list) and len(d) == 2 and isinstance(d[0], str) and _is_str_or_none(d[1])
        for d in deps), "malformed dependencies")
    return Code(
        name=name, qualname=qualname,
        params=tuple(_param(p) for p in params),
        rest=_param(rest) if rest is not None else None,
        return_type=return_type, hint=_hint_from_plain(hint), nlocals=nlocals,
        freevars=tuple(freevars), ops=tuple(ops), args=_ints(args, "arguments"),
        consts=tuple(_const_from_plain(c, depth) for c in consts),
        names=tuple(names), sites=tuple(_site_from_plain(s) for s in _list(sites, "sites")),
        positions=_ints(positions, "positions"), source_hash=source_hash,
        deps=tuple((d[0], d[1]) for d in deps),
    )


def _list(value: Any, what: str) -> list[Any]:
    _expect(isinstance(value, list), f"malformed {what}")
    return value


def _const_from_plain(plain: Any, depth: int) -> Any:
    if isinstance(plain, list) and len(plain) == 2 and plain[0] == T_CODE:
        return _code_from_plain(plain[1], depth + 1)
    return plain_to_value(plain)


def _site_from_plain(plain: Any) -> Site:
    _expect(isinstance(plain, list) and len(plain) == 3 and type(plain[0]) is int
            and _is_str_or_none(plain[1]), "malformed call site")
    meta = plain_to_value(plain[2]) if plain[2] is not None else EMPTY_MAP
    _expect(isinstance(meta, Map), "call-site metadata must be a map")
    return Site(plain[0], plain[1], meta)


def _hint_from_plain(plain: Any) -> DelegationHint | None:
    if plain is None:
        return None
    _expect(isinstance(plain, list) and len(plain) == 3 and plain[0] in set(HintKind)
            and _is_str_or_none(plain[1]) and isinstance(plain[2], list), "malformed hint")
    extra = []
    for item in plain[2]:
        _expect(isinstance(item, list) and len(item) == 2 and isinstance(item[0], str),
                "malformed hint entry")
        extra.append((item[0], plain_to_value(item[1])))
    return DelegationHint(HintKind(plain[0]), plain[1], tuple(extra))
