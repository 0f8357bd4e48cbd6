"""`Executor`: runs a decided call on its target.

`LocalPure` in the VM (the call's own `run_local`), `LocalModel`/`RemoteModel` through the
provider registry (arguments as a prompt, a trailing map as parameters; a provider that is a
`delegation.federation.CallForwarder`, a peer arbiter, gets the call itself), `L4CacheHit` by
loading verified published bytecode and binding the functions it was compiled against by
source hash (only those `bindable` allows).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from delegation.codelib import CodeLibrary
from delegation.convert import prompt_of, to_rtfs
from delegation.errors import StorageFailure
from delegation.providers.base import call_deadline
from delegation.targets import ExecTarget, L4CacheHit, LocalModel, LocalPure, RemoteModel
from rtfs.router import RoutedCall
from rtfs.values import Closure


class Executor:
    """Runs a call on a target.

    `bindable(name)` says whether a function published code depends on may be defined in
    the VM under `name` (a step run for a remote caller binds no sensitive one).
    """

    def __init__(self, registry: Any, library: CodeLibrary | None,
                 vm: Callable[[], Any], *,
                 bindable: Callable[[str], bool] = lambda name: True) -> None:
        self.registry = registry
        self.library = library
        self._vm = vm
        self.bindable = bindable

    def run(self, target: ExecTarget, call: RoutedCall) -> tuple[Any, float]:
        """(value, cost) of running `call` on `target`."""
        if isinstance(target, LocalPure):
            return call.run_local(), 0.0
        if isinstance(target, (LocalModel, RemoteModel)):
            provider = self.registry.get(target)
            forward = getattr(provider, "forward", None)  # a peer: RTFS values, no prompt
            if forward is not None:
                with call_deadline(call.deadline):
                    value, cost = forward(call)
                return value, cost
            prompt, params = prompt_of(call.args)
            if call.deadline is None:
                result = provider.infer(prompt, **params)
            else:
                with call_deadline(call.deadline):  # providers wait at most what is left
                    result = provider.infer(prompt, **params)
            value = result.value if result.value is not None else result.text
            return to_rtfs(value), result.cost
        if isinstance(target, L4CacheHit):
            return self._run_published(call), 0.0
        raise TypeError(f"unknown target {target!r}")

    def _run_published(self, call: RoutedCall) -> Any:
        if self.library is None:
            raise StorageFailure(call.name, "L4 is off on this node")
        found = self.library.find_by_name(call.name)
        if found is None:
            raise StorageFailure(call.name, "no trusted version is published in L4")
        code = self.library.decode(found.record.blob_id, found.data)
        vm = self._vm()
        self.bind_dependencies(code, vm)
        # The call's deadline stops published code too (inside a run the VM's own applies;
        # a call routed from outside one, such as a peer's, brings it here).
        return vm.call(Closure(code, (), code.name), list(call.args), route=False,
                       deadline=call.deadline)

    def bind_dependencies(self, code: Any, vm: Any) -> None:
        """Define in `vm`, by source hash, the functions `code` was compiled against (and
        theirs), as far as L4 holds them and `bindable` allows."""
        self._bind_dependencies(code, vm, depth=0)

    def _bind_dependencies(self, code: Any, vm: Any, depth: int) -> None:
        """Define, by source hash, the functions published code was compiled against."""
        if depth > 32 or self.library is None:
            return
        for name, source_hash in code.deps:
            if source_hash is None or name in vm.globals or not self.bindable(name):
                continue
            dep = self.library.by_source(source_hash)
            if dep is not None:
                vm.define(name, Closure(dep, (), dep.name))
                self._bind_dependencies(dep, vm, depth + 1)
