"""Verified bytecode -> Python source, for the fast path (rtfs.fast).

The source is a function of the code's structure only: its opcodes, operands, stack heights,
the shape of its control flow, the number of its call sites' arguments, whether a constant
is an integer, and, for a handful of call sites of arithmetic builtins, which of a fixed set
of inline templates applies. No text of the code's constants, names or metadata is ever
spliced in: every constant, name, call site and helper reaches the generated function as a
value bound to a mangled identifier (`k3` is constant 3, `n1` name 1, `S2` the resolution of
global call site 2, `rt_*` a runtime helper), and the generated module runs with no builtins
at all.

Shape of the output:

    def __factory(<every value the function uses>):
        def __fn(ex, self_, d, l0, l1, *l2):     # ex: the Execution; d: the caller's depth
            <depth and deadline checks>
            try:
                <basic blocks>
            except Exception as e_:
                <the error, positioned at the instruction whose line raised it>
        return __fn

Stack slots become variables named by height (`s0`, `s1`, ...), which verified code keeps
consistent wherever paths meet. Jumps only go forward, so basic blocks are emitted in order
(rtfs.flow), each guarded by `if nxt == <its pc>:` when some path may skip it, or nested in
a Python `if`/`else` for the if/else shapes. A try block becomes a Python `try` around
exactly its instructions. An op with no native translation runs on the VM's own handler
(so ops added later are covered). Code the translator does not cover (an opcode it does not
know and the VM has no handler for, a try block that is not contiguous, Python's nesting
limits) raises `Untranslatable`, and the VM loop runs it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rtfs.bytecode import JUMP_OPS, Code, Op, stack_effect
from rtfs.errors import BytecodeError
from rtfs.flow import OP, TERMINAL, Flow, Untranslatable
from rtfs.verify import verify

__all__ = ["INLINE", "GlobalSite", "Translation", "Untranslatable", "compile_factory",
           "translate"]

# Inline templates for call sites of a few builtins: (argc, guard, expression). A template
# applies only while the site is bound to that very standard-library builtin and no router
# claims it (rtfs.fast checks that when it resolves the site), and only under its guard, where
# it computes exactly what the builtin does; otherwise the builtin is called.
_INT2 = "{a:int} and {b:int}"
_INT1 = "{a:int}"
INLINE: dict[str, tuple[int, str, str]] = {
    "+": (2, _INT2, "{a} + {b}"),
    "-": (2, _INT2, "{a} - {b}"),
    "*": (2, _INT2, "{a} * {b}"),
    "<": (2, _INT2, "{a} < {b}"),
    ">": (2, _INT2, "{a} > {b}"),
    "<=": (2, _INT2, "{a} <= {b}"),
    ">=": (2, _INT2, "{a} >= {b}"),
    "=": (2, _INT2, "{a} == {b}"),
    "not=": (2, _INT2, "{a} != {b}"),
    "inc": (1, _INT1, "{a} + 1"),
    "dec": (1, _INT1, "{a} - 1"),
    "zero?": (1, _INT1, "{a} == 0"),
    "not": (1, "True", "{a} is None or {a} is False"),
    "nil?": (1, "True", "{a} is None"),
}

_HELPER = re.compile(r"\brt_\w+")

# Slow ops whose handlers neither call out of RTFS code (so need no depth) nor touch the try
# blocks: run directly. Any other op, new ones included, goes through rt_slow_op.
_SELF_CONTAINED = frozenset(int(op) for op in (
    Op.BUILD_MAP, Op.BUILD_SET, Op.RERAISE, Op.ERR_MATCHES, Op.NTH_OR_NIL, Op.REST_FROM,
    Op.GET_KEY, Op.GET_KEY_OR, Op.TEST_SEQ, Op.TEST_SEQ_MIN, Op.TEST_MAP, Op.HAS_KEY,
    Op.EQUAL, Op.MATCH_FAIL, Op.THROW, Op.CHECK_TYPE, Op.IS_TYPE, Op.MAP_REST, Op.RECUR,
    Op.BUILD_QQ))



@dataclass(frozen=True)
class GlobalSite:
    """A CALL_GLOBAL call site as the generated code uses it."""

    index: int  # into code.sites
    pc: int
    inline: str | None  # the INLINE template's name, when one applies to this site's shape


@dataclass(frozen=True)
class Translation:
    """What `translate` produced: the source, the factory's parameters in order, and the
    global call sites (whose resolution the linker keeps current)."""

    source: str
    params: tuple[str, ...]
    global_sites: tuple[GlobalSite, ...]
    call_sites: tuple[tuple[int, int], ...]  # (site index, pc) of CALL sites
    line_pcs: tuple[int, ...]  # source line -> the instruction it belongs to


def translate(code: Code, has_slow_op: Callable[[int], bool]) -> Translation:
    """Python source for `code` (see the module docstring). `has_slow_op(op)` says whether
    the VM has a generic handler for an opcode this module does not emit natively.

    Raises:
        Untranslatable: the VM loop must run this code.
    """
    if not code.verified:
        try:
            verify(code)
        except BytecodeError as err:
            raise Untranslatable(str(err)) from err
    return _Translator(code, has_slow_op).run()


class _Translator:
    def __init__(self, code: Code, has_slow_op: Callable[[int], bool]) -> None:
        self.code = code
        self.has_slow_op = has_slow_op
        self.lines: list[str] = []
        self.line_pcs: list[int] = []  # the instruction each line belongs to
        self.pc = 0
        self.depth = 0
        self.used: set[str] = set()
        self.stk: list[str] = []
        self.global_sites: list[GlobalSite] = []
        self.call_sites: list[tuple[int, int]] = []
        self.flow = Flow(code)
        self.states = self.flow.states

    # -- emission helpers ----------------------------------------------------------------------
    def emit(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)
        self.line_pcs.append(self.pc)

    def use(self, name: str) -> str:
        self.used.add(name)
        return name

    def push(self, atom: str) -> None:
        self.stk.append(atom)

    def pop(self, count: int = 1) -> list[str]:
        if count == 0:
            return []
        taken = self.stk[-count:]
        del self.stk[-count:]
        return taken

    def slot(self) -> str:
        """The variable for a value pushed now."""
        return f"s{len(self.stk)}"

    def materialise(self) -> None:
        for height, atom in enumerate(self.stk):
            if atom != f"s{height}":
                self.emit(f"s{height} = {atom}")
                self.stk[height] = f"s{height}"

    def spill(self, local: str) -> None:
        """Store pending reads of `local` in their slots before `local` changes."""
        for height, atom in enumerate(self.stk):
            if atom == local:
                self.emit(f"s{height} = {atom}")
                self.stk[height] = f"s{height}"

    def where(self) -> str:
        """The instruction that raised the exception being handled: the generated line it
        was on, mapped back (so no instruction pays for tracking its own position)."""
        return f"{self.use('PCS')}[e_.__traceback__.tb_lineno]"

    # -- the function ----------------------------------------------------------------------------
    def run(self) -> Translation:
        self.depth = 3
        self.body()
        body, body_pcs = self.lines, self.line_pcs
        self.lines, self.line_pcs = [], []
        self.pc = 0
        self.prologue(bool(self.flow.guarded))
        self.lines.extend(body)
        self.line_pcs.extend(body_pcs)
        self.epilogue()
        self.use("PCS")
        params = tuple(sorted(self.used))
        header = f"def __factory({', '.join(params)}):"
        source = "\n".join([header, *self.lines, "    return __fn", ""])
        line_pcs = (0, 0, *self.line_pcs, 0)  # source lines count from 1; line 1 is the header
        return Translation(source, params, tuple(self.global_sites), tuple(self.call_sites),
                           line_pcs)

    def prologue(self, has_guards: bool) -> None:
        code = self.code
        nparams = len(code.params)
        params = [f"l{i}" for i in range(nparams)]
        if code.rest is not None:
            params.append(f"*l{nparams}")
        self.depth = 1
        self.emit(f"def __fn({', '.join(['ex', 'self_', 'd', *params])}):")
        self.depth = 2
        args = [*params[:nparams], *([f"*l{nparams}"] if code.rest is not None else [])]
        call_args = f"[{', '.join(args)}]"
        self.emit(f"if d >= {self.use('LIM')}:")
        self.emit(f"    return {self.use('rt_deep')}(ex, self_, d, {call_args})")
        self.emit("t_ = ex.ticks - 1")
        self.emit("ex.ticks = t_")
        self.emit("if t_ < 0:")
        self.emit("    ex.check_deadline()")
        self.emit("d1 = d + 1")
        if has_guards:
            self.emit("nxt = 0")
        self.emit("try:")
        self.depth = 3
        if code.rest is not None:
            self.emit(f"l{nparams} = l{nparams} if l{nparams} else None")
        first_plain = nparams + (code.rest is not None)
        if code.nlocals > first_plain:
            names = " = ".join(f"l{i}" for i in range(first_plain, code.nlocals))
            self.emit(f"{names} = None")
        if code.freevars:
            frees = ", ".join(f"f{i}" for i in range(len(code.freevars)))
            self.emit(f"{frees}, = self_.cells")

    def epilogue(self) -> None:
        self.depth = 2
        self.emit(f"except {self.use('rt_exception')} as e_:")
        self.emit(f"    err_ = {self.use('rt_fault')}(e_, {self.use('CODE')}, {self.where()})")
        self.emit("    if err_ is e_:")
        self.emit("        raise")
        self.emit("    raise err_ from e_")

    def body(self) -> None:
        regions, guarded = self.flow.regions, set(self.flow.guarded)
        opens = {first: setup for setup, (first, _) in regions.items()}
        closes = {last: setup for setup, (_, last) in regions.items()}
        skip: set[int] = set()
        for begin, end in self.flow.blocks:
            if begin in skip:
                continue
            setup = opens.get(begin)
            if setup is not None:
                self.emit("try:")
                self.depth += 1
            outer = self.depth
            if begin in guarded:
                self.emit(f"if nxt == {begin}:")
                self.depth += 1
            mark = len(self.lines)
            skip.update(self.block(begin, end))
            if len(self.lines) == mark:
                self.emit("pass")
            self.depth = outer
            setup = closes.get(end)
            if setup is not None:
                self.close_try(setup, end)

    def block(self, begin: int, end: int) -> list[int]:
        """Emit one block (and, for an if/else, the blocks of its branches, recursively);
        returns the starts of the branch blocks it emitted."""
        self.stk = [f"s{h}" for h in range(self.states[begin][0])]
        diamond = self.flow.diamonds.get(end)
        if diamond is None:
            for pc in range(begin, end + 1):
                self.instruction(pc)
            self.block_end(end)
            return []
        for pc in range(begin, end):
            self.instruction(pc)
        self.pc = end
        value = self.pop()[0]
        self.materialise()
        self.emit(f"if {value} is not None and {value} is not False:")
        inside = []
        for i, (first, last) in enumerate(diamond):
            if i:
                self.emit("else:")
            self.depth += 1
            mark = len(self.lines)
            inside += [first, *self.block(first, last)]
            if len(self.lines) == mark:
                self.emit("pass")
            self.depth -= 1
        return inside

    def close_try(self, setup: int, last: int) -> None:
        self.depth -= 1
        height = self.states[setup][0]
        handler = self.code.args[setup]
        self.emit(f"except {self.use('rt_exception')} as e_:")
        self.emit(f"    s{height} = {self.use('rt_error_value')}("
                  f"{self.use('rt_fault')}(e_, {self.use('CODE')}, {self.where()}))")
        if self.flow.needs_nxt(last, handler):
            self.emit(f"    nxt = {handler}")

    def goto(self, source: int, target: int) -> None:
        if self.flow.needs_nxt(source, target):
            self.emit(f"nxt = {target}")

    def block_end(self, end: int) -> None:
        op, arg = self.code.ops[end], self.code.args[end]
        self.pc = end
        if op in TERMINAL and op != Op.JUMP:
            return
        if op == Op.JUMP_IF_FALSE:
            self.branch(end, arg, self.pop()[0], jump_when_false=True)
        elif op in (Op.JUMP_IF_FALSE_OR_POP, Op.JUMP_IF_TRUE_OR_POP):
            self.materialise()
            value = self.stk[-1]
            self.branch(end, arg, value, jump_when_false=op == Op.JUMP_IF_FALSE_OR_POP)
        elif op == Op.JUMP:
            self.materialise()
            self.goto(end, arg)
        else:
            self.materialise()
            if end + 1 in self.states:
                self.goto(end, end + 1)

    def branch(self, end: int, target: int, value: str, *, jump_when_false: bool) -> None:
        self.materialise()
        falsy = f"{value} is None or {value} is False"
        jump, fall = self.flow.needs_nxt(end, target), self.flow.needs_nxt(end, end + 1)
        if not (jump or fall):
            return
        test = falsy if jump_when_false else f"not ({falsy})"
        if jump and fall:
            self.emit(f"nxt = {target} if {test} else {end + 1}")
        elif jump:
            self.emit(f"if {test}:")
            self.emit(f"    nxt = {target}")
        else:
            self.emit(f"if not ({test}):")
            self.emit(f"    nxt = {end + 1}")

    # -- instructions --------------------------------------------------------------------------
    def instruction(self, pc: int) -> None:
        code = self.code
        op, arg = code.ops[pc], code.args[pc]
        self.pc = pc
        handler = _NATIVE.get(op)
        if handler is not None:
            handler(self, pc, arg)
        elif op in JUMP_OPS or op == Op.POP_TRY:
            return  # control flow: the block end emits it
        elif self.has_slow_op(op):
            self.slow_op(pc, op, arg)
        else:
            raise Untranslatable(f"opcode {op} has no translation and no generic handler")

    def slow_op(self, pc: int, op: int, arg: int) -> None:
        """An op run by the VM's own handler on a small list standing in for the stack."""
        needed, effect = stack_effect(OP[op], arg, self.code)
        values = self.pop(needed)
        base = len(self.stk)
        if op in _SELF_CONTAINED:
            self.emit(f"t_ = [{', '.join(values)}]")
            self.emit(f"{self.use(f'O{op}')}(ex, {self.use('CODE')}, {arg}, t_, (), {pc + 1})")
        else:  # it may call out of RTFS code (or it is new): say at which depth
            self.emit(f"t_ = {self.use('rt_slow_op')}({self.use(f'O{op}')}, ex, d1, "
                      f"{self.use('CODE')}, {arg}, [{', '.join(values)}], {pc + 1})")
        if op in TERMINAL:
            return
        for i in range(needed + effect):
            self.emit(f"s{base + i} = t_[{i}]")
            self.push(f"s{base + i}")

    def load_const(self, pc: int, arg: int) -> None:
        self.push(self.use(f"k{arg}"))

    def load_local(self, pc: int, arg: int) -> None:
        self.push(f"l{arg}")

    def store_local(self, pc: int, arg: int) -> None:
        value = self.pop()[0]
        self.spill(f"l{arg}")
        self.emit(f"l{arg} = {value}")

    def load_deref(self, pc: int, arg: int) -> None:
        slot = self.slot()
        self.emit(f"{slot} = l{arg}.value")
        self.emit(f"if {slot} is {self.use('rt_unset')}:")
        self.emit(f"    {self.use('rt_unset_local')}()")
        self.push(slot)

    def store_deref(self, pc: int, arg: int) -> None:
        self.emit(f"l{arg}.value = {self.pop()[0]}")

    def make_cell(self, pc: int, arg: int) -> None:
        self.spill(f"l{arg}")
        self.emit(f"l{arg} = {self.use('rt_cell')}({self.use('rt_unset')})")

    def cellify(self, pc: int, arg: int) -> None:
        self.spill(f"l{arg}")
        self.emit(f"l{arg} = {self.use('rt_cell')}(l{arg})")

    def load_free(self, pc: int, arg: int) -> None:
        slot = self.slot()
        self.emit(f"{slot} = f{arg}.value")
        self.emit(f"if {slot} is {self.use('rt_unset')}:")
        self.emit(f"    {self.use('rt_unset_free')}({self.use(f'v{arg}')})")
        self.push(slot)

    def load_cellref(self, pc: int, arg: int) -> None:
        self.push(f"l{arg}")

    def load_freeref(self, pc: int, arg: int) -> None:
        self.push(f"f{arg}")

    def load_global(self, pc: int, arg: int) -> None:
        slot = self.slot()
        self.emit(f"{slot} = {self.use('GGET')}({self.use(f'n{arg}')}, {self.use('rt_missing')})")
        self.emit(f"if {slot} is {self.use('rt_missing')}:")
        self.emit(f"    {self.use('rt_unbound')}({self.use(f'n{arg}')})")
        self.push(slot)

    def def_global(self, pc: int, arg: int) -> None:
        self.emit(f"{self.use('DEFINE')}({self.use(f'n{arg}')}, {self.stk[-1]})")

    def load_self(self, pc: int, arg: int) -> None:
        self.push("self_")

    def pop_op(self, pc: int, arg: int) -> None:
        self.pop()

    def dup(self, pc: int, arg: int) -> None:
        self.push(self.stk[-1])

    def return_op(self, pc: int, arg: int) -> None:
        self.emit(f"return {self.pop()[0]}")

    def make_closure(self, pc: int, arg: int) -> None:
        child = self.code.consts[arg]
        captured = self.pop(len(child.freevars))
        slot = self.slot()
        const = self.use(f"k{arg}")
        cells = f"({', '.join(captured)},)" if captured else "()"
        self.emit(f"{slot} = {self.use('rt_closure')}({const}, {cells}, {const}.name)")
        self.push(slot)

    def build_vector(self, pc: int, arg: int) -> None:
        items = self.pop(arg)
        slot = self.slot()
        self.emit(f"{slot} = ({', '.join(items)},)" if items else f"{slot} = ()")
        self.push(slot)

    def recur(self, pc: int, arg: int) -> None:
        """RECUR: the request to run the enclosing loop body again, with these values."""
        items = self.pop(arg)
        slot = self.slot()
        self.emit(f"{slot} = {self.use('rt_recur')}([{', '.join(items)}])")
        self.push(slot)

    def call_global(self, pc: int, arg: int) -> None:
        site = self.code.sites[arg]
        args = self.pop(site.argc)
        slot = self.slot()
        cell = self.use(f"S{arg}")
        template = INLINE.get(site.name or "")
        inline = template is not None and template[0] == site.argc
        self.global_sites.append(GlobalSite(arg, pc, site.name if inline else None))
        generic = ", ".join(["ex", "x_", "d1", *args])
        plain = ", ".join(args)
        if inline and template is not None:
            _, guard, expr = template
            for helper in _HELPER.findall(guard + expr):
                self.use(helper)
            names = dict(zip("ab", args))
            flag = self.use(f"I{arg}")
            test = flag if guard == "True" else f"{flag} and {self.int_guard(guard, names)}"
            self.emit(f"if {test}:")
            self.emit(f"    {slot} = {expr.format(**names)}")
            self.emit("else:")
            self.depth += 1
        self.emit(f"p_, c_, x_ = {cell}")
        self.emit(f"{slot} = c_({plain}) if p_ else c_({generic})")
        if inline:
            self.depth -= 1
        self.push(slot)

    def int_guard(self, guard: str, names: dict[str, str]) -> str:
        """`{a:int} and {b:int}` as Python: a type test per distinct operand, none for a
        constant that is an int (its type is part of the code's structure)."""
        tests = []
        for placeholder in re.findall(r"\{(\w):int\}", guard):
            atom = names[placeholder]
            if atom.startswith("k") and type(self.code.consts[int(atom[1:])]) is int:
                continue
            test = f"{self.use('rt_type')}({atom}) is {self.use('rt_int')}"
            if test not in tests:
                tests.append(test)
        return " and ".join(tests) or "True"

    def call(self, pc: int, arg: int) -> None:
        site = self.code.sites[arg]
        args = self.pop(site.argc)
        callee = self.pop()[0]
        slot = self.slot()
        self.call_sites.append((arg, pc))
        call_args = ", ".join(["ex", self.use(f"X{arg}"), "d1", callee, *args])
        self.emit(f"{slot} = {self.use('rt_call_value')}({call_args})")
        self.push(slot)


_NATIVE: dict[int, Callable[[_Translator, int, int], None]] = {
    int(Op.LOAD_CONST): _Translator.load_const,
    int(Op.LOAD_LOCAL): _Translator.load_local,
    int(Op.STORE_LOCAL): _Translator.store_local,
    int(Op.LOAD_DEREF): _Translator.load_deref,
    int(Op.STORE_DEREF): _Translator.store_deref,
    int(Op.MAKE_CELL): _Translator.make_cell,
    int(Op.CELLIFY): _Translator.cellify,
    int(Op.LOAD_FREE): _Translator.load_free,
    int(Op.LOAD_CELLREF): _Translator.load_cellref,
    int(Op.LOAD_FREEREF): _Translator.load_freeref,
    int(Op.LOAD_GLOBAL): _Translator.load_global,
    int(Op.DEF_GLOBAL): _Translator.def_global,
    int(Op.LOAD_SELF): _Translator.load_self,
    int(Op.POP): _Translator.pop_op,
    int(Op.DUP): _Translator.dup,
    int(Op.RETURN): _Translator.return_op,
    int(Op.MAKE_CLOSURE): _Translator.make_closure,
    int(Op.BUILD_VECTOR): _Translator.build_vector,
    int(Op.RECUR): _Translator.recur,
    int(Op.CALL_GLOBAL): _Translator.call_global,
    int(Op.CALL): _Translator.call,
}


def compile_factory(translation: Translation) -> Any:
    """The factory function the translation's source defines, run with no builtins."""
    namespace: dict[str, Any] = {"__builtins__": {}}
    try:
        exec(compile(translation.source, "<rtfs-fast>", "exec"), namespace)  # noqa: S102
    except (SyntaxError, RecursionError, MemoryError, ValueError) as err:
        raise Untranslatable(f"Python cannot compile it: {err}") from err
    return namespace["__factory"]
