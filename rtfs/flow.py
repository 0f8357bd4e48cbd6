"""The control flow of one verified function, as the translator (rtfs.translate) needs it.

Jumps only go forward, so one pass in instruction order sees every instruction after all of
its predecessors: it gives each reachable instruction its stack height and open try blocks,
splits the code into basic blocks, checks that each try block is one contiguous run of
instructions (which a Python `try` can wrap), finds if/else shapes that can be emitted as
Python `if`/`else`, and decides which blocks some path may skip (they test `nxt`).
Code outside these shapes raises `Untranslatable`: the VM loop runs it.
"""

from __future__ import annotations

import bisect
from collections import Counter

from rtfs.bytecode import JUMP_OPS, TERMINAL_OPS, Code, Op, branch_effect, stack_effect


class Untranslatable(Exception):
    """The translator does not cover this code; the VM loop runs it (not an RTFS error)."""


OP = {int(op): op for op in Op}
ENDS_BLOCK = frozenset(int(op) for op in JUMP_OPS | TERMINAL_OPS | {Op.POP_TRY})
TERMINAL = frozenset(int(op) for op in TERMINAL_OPS)
_KNOWN_JUMPS = frozenset(int(op) for op in (Op.JUMP, Op.JUMP_IF_FALSE, Op.JUMP_IF_FALSE_OR_POP,
                                            Op.JUMP_IF_TRUE_OR_POP, Op.SETUP_TRY))
MAX_TRY_NESTING = 15  # Python allows 20 statically nested blocks; the translation adds 3
MAX_IF_NESTING = 40  # Python allows 100 levels of indentation

State = tuple[int, tuple[int, ...]]  # stack height, pcs of the SETUP_TRYs still open
Block = tuple[int, int]  # first and last pc
Diamond = tuple[Block, Block]  # the branch taken when the test holds, and the other


class Flow:
    """Blocks, try regions, if/else shapes and guards of `code` (verified).

    Raises:
        Untranslatable: an opcode without a known stack effect or jump semantics, try blocks
            nested too deeply or not contiguous, paths meeting in different states.
    """

    def __init__(self, code: Code) -> None:
        self.code = code
        self.states: dict[int, State] = {}
        self.order: list[int] = []  # reachable pcs, in order
        self.analyse()
        self.regions = self.try_regions()
        self.blocks = self.find_blocks()
        self.diamonds = self.find_diamonds()
        nested = {start for pair in self.diamonds.values() for start, _ in pair}
        self.guarded = [b for b in self.find_guards() if b not in nested]

    def needs_nxt(self, source: int, target: int) -> bool:
        """Whether an edge must set `nxt`: some guarded block lies in (source, target]."""
        i = bisect.bisect_right(self.guarded, source)
        return i < len(self.guarded) and self.guarded[i] <= target

    # -- analysis ----------------------------------------------------------------------------
    def analyse(self) -> None:
        code, states = self.code, self.states
        states[0] = (0, ())
        for pc in range(len(code.ops)):
            state = states.get(pc)
            if state is None:
                continue
            self.order.append(pc)
            op, arg = code.ops[pc], code.args[pc]
            if op in JUMP_OPS and op not in _KNOWN_JUMPS:
                raise Untranslatable(f"unknown jump opcode {op}")
            try:
                needed, effect = stack_effect(OP[op], arg, code)
            except KeyError as err:
                raise Untranslatable(f"no stack effect for opcode {op}") from err
            height, blocks = state
            if op == Op.SETUP_TRY:
                self.merge(arg, (height + 1, blocks))
                blocks = blocks + (pc,)
                if len(blocks) > MAX_TRY_NESTING:
                    raise Untranslatable("try blocks nested too deeply")
            elif op == Op.POP_TRY:
                blocks = blocks[:-1]
            elif op in JUMP_OPS:
                self.merge(arg, (height + branch_effect(OP[op]), blocks))
            if blocks and height - needed < states[blocks[-1]][0]:
                raise Untranslatable("a try block pops values it did not push")
            if op not in TERMINAL:
                self.merge(pc + 1, (height + effect, blocks))

    def merge(self, target: int, state: State) -> None:
        known = self.states.setdefault(target, state)
        if known != state:
            raise Untranslatable(f"paths meet at {target} in different states")

    def try_regions(self) -> dict[int, tuple[int, int]]:
        """SETUP_TRY pc -> (first pc inside, last pc inside: its POP_TRY, or an instruction
        that never falls through), checking each is one contiguous run of instructions."""
        regions = {}
        for setup in (pc for pc in self.order if self.code.ops[pc] == Op.SETUP_TRY):
            inside = [pc for pc in self.order if setup in self.states[pc][1]]
            if not inside:
                raise Untranslatable("an empty try block")
            last = inside[-1]
            span = [pc for pc in self.order if setup < pc <= last]
            ends = self.code.ops[last] == Op.POP_TRY or self.code.ops[last] in TERMINAL
            if span != inside or not ends:  # (a body that always raises has no POP_TRY)
                raise Untranslatable("a try block that is not one contiguous region")
            regions[setup] = (setup + 1, last)
        return regions

    def find_blocks(self) -> list[Block]:
        ops, order, reachable = self.code.ops, self.order, set(self.order)
        starts = {0}
        for pc in order:
            op = ops[pc]
            if op in JUMP_OPS:
                starts.add(self.code.args[pc])
            if op in ENDS_BLOCK and pc + 1 in reachable:
                starts.add(pc + 1)
        result, begin = [], None
        for i, pc in enumerate(order):
            if begin is None:
                begin = pc
            following = order[i + 1] if i + 1 < len(order) else None
            if following is None or following in starts or following != pc + 1:
                result.append((begin, pc))
                begin = None
        return result

    def edges(self, end: int) -> list[int]:
        """Targets of the edges leaving the block that ends at `end` (a try's handler edge
        leaves from its POP_TRY, where the Python `try` statement ends)."""
        op, arg = self.code.ops[end], self.code.args[end]
        targets = []
        if op in JUMP_OPS and op != Op.SETUP_TRY:
            targets.append(arg)
        if op not in TERMINAL and end + 1 in self.states:
            targets.append(end + 1)
        for setup, (_, last) in self.regions.items():
            if last == end:
                targets.append(self.code.args[setup])
        return targets

    def find_diamonds(self) -> dict[int, Diamond]:
        """`if`/`else` shapes to emit as Python `if`/`else` rather than through `nxt`: a block
        ending in JUMP_IF_FALSE whose two successors are single blocks, one after the other,
        that nothing else jumps into. Keyed by the conditional's pc."""
        blocks, regions = self.blocks, self.regions
        preds: Counter[int] = Counter()
        for _, end in blocks:
            for target in self.edges(end):
                preds[target] += 1
        boundaries = {first for first, _ in regions.values()} | {
            last for _, last in regions.values()}
        found: dict[int, Diamond] = {}
        level: dict[int, int] = {}  # block start -> how deep in nested if/else it sits
        for i in range(len(blocks) - 2):
            begin, end = blocks[i]
            fall, jump = blocks[i + 1], blocks[i + 2]
            depth = level.get(begin, 0)
            if (self.code.ops[end] == Op.JUMP_IF_FALSE and fall[0] == end + 1
                    and jump[0] == self.code.args[end] and preds[fall[0]] == 1
                    and preds[jump[0]] == 1 and not boundaries & {*fall, *jump}
                    and depth < MAX_IF_NESTING):
                found[end] = (fall, jump)
                level[fall[0]] = level[jump[0]] = depth + 1
        return found

    def find_guards(self) -> list[int]:
        """Sorted block starts that some path may skip (they test `nxt`)."""
        pending: Counter[int] = Counter()
        guarded = []
        for begin, end in self.blocks:
            pending.pop(begin, None)
            if pending and max(pending) > begin:
                guarded.append(begin)
            for target in self.edges(end):
                pending[target] += 1
        return guarded
