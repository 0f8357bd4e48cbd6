"""`delegation` / `python -m delegation`: run RTFS plans with the delegation engine.

  delegation run FILE [--config F] [--context JSON] [--explain | --json]
  delegation decide SYMBOL... [--config F] [--meta '{:complexity :high}']
  delegation config check F

The configuration is `--config F`, else `delegation.toml` beside the program, else the
built-in default (local models only; runs offline). Errors are one line on stderr, never a
traceback: exit 1 for a program that fails, 2 for a bad configuration or usage.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from delegation.config import DelegationConfig, default_config, load_config
from delegation.errors import ConfigError, DelegationError, UsageError
from delegation.explain import as_json, explain_table
from delegation.extensions import Extensions, SharedState, discover
from delegation.l2.cli import add_parser as add_l2_parser
from delegation.l2.errors import ContextError
from delegation.l3.context import context_from_json
from delegation.providers import build_registry
from delegation.runtime import Runtime
from rtfs.errors import RtfsError
from rtfs.printer import to_readable
from rtfs.reader import form_to_value, read
from storage import StorageError


def _config(explicit: str | None, program: Path | None,
            state_dir: str | None = None) -> tuple[DelegationConfig, str]:
    env = os.environ
    if explicit is not None:
        return load_config(explicit, state_dir=state_dir, environ=env), explicit
    if program is not None:
        beside = program.parent / "delegation.toml"
        if beside.is_file():
            return (load_config(beside, state_dir=state_dir, environ=env),
                    f"{beside} (beside the program)")
    return (default_config(state_dir=state_dir, environ=env),
            "built-in default (local models only)")


def _connect(config: DelegationConfig, address: str | None) -> SharedState:
    if address is None:
        return SharedState()
    connect = discover().cluster_connector
    if connect is None:
        raise UsageError("--cluster needs the cluster extension: "
                         "pip install 'rtfs-delegation[cluster]'")
    shared = connect(config, address, environ=os.environ)
    for warning in shared.warnings:
        _warn(warning)
    return shared


def _with_context(config: DelegationConfig, text: str | None) -> DelegationConfig:
    """`--context '{"tenant": "acme"}'` on top of the config's `[delegation.context]`."""
    if text is None:
        return config
    try:
        extra = context_from_json(text)
    except ContextError as err:
        raise UsageError(str(err)) from None
    return replace(config, context=config.context.merged(extra))


CLOSE_TIMEOUT_S = 60.0
"""Longest a run waits, after printing its answer, for its fleet connection to flush and
stop; past it (or when the connection says it could not stop) the process ends without it."""

_abandoned: list[str] = []  # what could not be stopped: `entry` ends the process anyway


def _close(shared: SharedState) -> None:
    """`shared.close()`, bounded by `CLOSE_TIMEOUT_S`. A fleet whose head died can leave
    Ray's client unable to stop; the run's answer is out by then, and the process must not
    wait on it (`entry` ends it without running Ray's exit hooks)."""
    outcome: list[bool | None] = []

    def close() -> None:
        try:
            outcome.append(shared.close())
        except Exception as err:  # a cache that cannot flush costs speed, not the answer
            _warn(f"closing the fleet connection failed: {type(err).__name__}: {err}")
            outcome.append(True)

    thread = threading.Thread(target=close, name="close-shared", daemon=True)
    thread.start()
    thread.join(CLOSE_TIMEOUT_S)
    if not outcome:
        _abandoned.append(f"the fleet connection did not close in {CLOSE_TIMEOUT_S:g} s")
    elif outcome[0] is False:
        _abandoned.append("the fleet connection could not stop")


def cmd_run(args: argparse.Namespace) -> int:
    program = Path(args.file)
    try:
        source = program.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read {program}: {getattr(err, 'strerror', None) or err}")
    config, origin = _config(args.config, program, args.state_dir)
    config = _with_context(config, args.context)
    shared = _connect(config, args.cluster)
    try:
        # with --json, stdout holds exactly one JSON document: what the plan prints goes to
        # stderr
        runtime = Runtime(config, environ=os.environ, plans=shared.plans,
                          learner=shared.learner, library=shared.library,
                          l2_store=shared.l2_store, l3=shared.l3, warn=_warn,
                          out=sys.stderr if args.json else None,
                          federation=shared.federation)
        error = None
        try:
            value = runtime.run(source).value
        except (RtfsError, DelegationError, StorageError) as err:
            error, value = f"{program}: {_one_line(err)}", None
        shared.report(runtime)
        # the answer is out before the fleet connection flushes and stops (write-behind)
        _show(args, runtime, value, error, origin)
    finally:
        _close(shared)
    return 0 if error is None else 1


def _show(args: argparse.Namespace, runtime: Runtime, value: Any, error: str | None,
          origin: str) -> None:
    calls, functions = runtime.last_calls, runtime.last_functions
    if args.json:
        print(as_json(value, calls, functions, config_source=origin, error=error))
    else:
        if error is None:
            print(to_readable(value))
        if args.explain:
            print()
            print(explain_table(calls, functions, config_source=origin,
                                plans_restored=runtime.plans_restored))
    if error is not None:
        print(f"delegation: {error}", file=sys.stderr)
    sys.stdout.flush()


def cmd_decide(args: argparse.Namespace) -> int:
    config, origin = _config(args.config, None, args.state_dir)
    config = _with_context(config, args.context)
    runtime = Runtime(config, environ=os.environ, warn=_warn, read_only=True)
    meta = None
    if args.meta:
        forms = read(args.meta)
        meta = form_to_value(forms[0]) if forms else None
        if not isinstance(meta, dict):
            raise UsageError("--meta takes an RTFS map such as '{:complexity :high}'")
    print(f"config: {origin}")
    for symbol in args.symbols:
        decision = runtime.decide(symbol, metadata=meta)
        target = str(decision.target) if decision.target is not None else "nowhere"
        print(f"{symbol}: {target} [{decision.layer}] {decision.reason}")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    config = load_config(args.file, environ=os.environ)
    build_registry(config, os.environ)  # local model files (rules) are read and checked here
    print(f"{args.file}: ok")
    print(f"  default target: {config.default_target}")
    for route in config.routes.routes:
        fallback = f" (fallback {route.fallback})" if route.fallback else ""
        print(f"  route {route.pattern!r} -> {route.target}{fallback}")
    for pid, provider in config.remote_providers.items():
        print(f"  remote provider {pid}: {provider.kind} {provider.base_url} {provider.model}")
    for mid, model in config.local_models.items():
        print(f"  local model {mid}: {model.kind}")
    print(f"  security: level {config.security.level}, sensitive "
          f"{list(config.security.sensitive.patterns)}")
    print(f"  l4: {config.l4.store_uri} (enabled: {config.enable_l4_cache})")
    return 0


def _warn(message: str) -> None:
    print(f"delegation: warning: {message}", file=sys.stderr, flush=True)


def _one_line(err: BaseException) -> str:
    if isinstance(err, RtfsError):  # a host error's message already names its cause
        where = f" ({err.line}:{err.col})" if err.line is not None else ""
        return f"{err.kind}: {err.message}{where}"
    return f"{type(err).__name__}: {err}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="delegation", description="The RTFS delegation engine.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run an RTFS program")
    run.add_argument("file")
    run.add_argument("--config", metavar="F")
    run.add_argument("--state-dir", metavar="D",
                     help="local state (default $XDG_STATE_HOME/rtfs-delegation)")
    run.add_argument("--cluster", metavar="ADDR",
                     help="share plans, outcomes and code with the fleet at ADDR")
    run.add_argument("--context", metavar="JSON",
                     help="the run's context for L3, e.g. '{\"tenant\": \"acme\"}'")
    output = run.add_mutually_exclusive_group()
    output.add_argument("--explain", action="store_true", help="print the routing table")
    output.add_argument("--json", action="store_true", help="print value and trace as JSON")
    run.set_defaults(run=cmd_run)
    decide = sub.add_parser("decide", help="show where calls of SYMBOL would run, and why")
    decide.add_argument("symbols", nargs="+", metavar="SYMBOL")
    decide.add_argument("--config", metavar="F")
    decide.add_argument("--state-dir", metavar="D", help="local state to read (never written)")
    decide.add_argument("--meta", metavar="MAP", help="call metadata, an RTFS map")
    decide.add_argument("--context", metavar="JSON", help="the run's context for L3")
    decide.set_defaults(run=cmd_decide)
    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a delegation.toml")
    check.add_argument("file")
    check.set_defaults(run=cmd_config_check)
    add_l2_parser(sub)
    _add_extension_commands(sub, discover())
    return parser


def _add_extension_commands(sub: Any, ext: Extensions) -> None:
    for command in ext.commands.values():
        parser = sub.add_parser(command.name, help=command.help)
        command.configure(parser)
        parser.set_defaults(run=command.run)


def main(argv: list[str] | None = None) -> int:
    for problem in discover().problems:
        _warn(problem)
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (UsageError, ConfigError) as err:
        print(f"delegation: {err}", file=sys.stderr)
        return 2
    except (RtfsError, DelegationError, StorageError) as err:
        print(f"delegation: {_one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except MemoryError:
        print("delegation: out of memory", file=sys.stderr)
        return 1
    except Exception as err:  # a bug of ours: still one line, never a traceback at a user
        print(f"delegation: internal error (please report): {type(err).__name__}: {err}",
              file=sys.stderr)
        return 1


def entry() -> None:
    """The `delegation` command: `main`, then the process ends with its exit status. When a
    run could not stop its fleet connection (a dead Ray head), it ends without running exit
    hooks, which would wait on that connection with no bound; its output is flushed first."""
    code = main()
    if _abandoned:
        _warn(f"{_abandoned[0]}; exiting without it")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
