"""The dispatcher with stand-in units: program order, tokens, END and every error it raises."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hdl.dispatcher import Dispatcher, _WordQueue
from hdl.isa import INSN_WIDTH, MAX_TOKENS, ErrorCause, Opcode, Unit
from sw.assembler import Instruction, decode, to_words

# Same-cycle reads of "any"-collision memories return garbage (see conftest).
pytestmark = pytest.mark.usefixtures("poisoned_srams")

CLOCK = 1e-6
UNITS = ("load", "exec", "store")


def load(**flags):
    return Instruction(Opcode.LOAD, dict(sp_addr=0, rows=1, dram_addr=0, dram_stride=0),
                       **flags)


def exec_(**flags):
    return Instruction(Opcode.EXEC, dict(weight_addr=0, act_addr=0, acc_addr=0, rows=1,
                                         preload=0, accumulate=0), **flags)


def store(**flags):
    return Instruction(Opcode.STORE, dict(acc_addr=0, rows=1, dest=0, dram_stride=0, mode=1,
                                          to_sp=0), **flags)


END = Instruction(Opcode.END)


def run_dispatcher(words, *, seed, latency=(1, 8), queue_depth=8, unit_queue_depth=4,
                   cycles=3000, run=True, row_bits=16, dram_bits=32, registered_head=True,
                   outstanding=None, host_waits=False):
    """Push ``words`` (with ``host_waits``, an instruction's first word only while ``free``
    says the queue has room, as the driver does), let stand-in units take instructions and
    finish them after a random latency. Returns a log of (cycle, unit, event, instruction),
    done pulses, the error and its unit."""
    dut = Dispatcher(queue_depth=queue_depth, unit_queue_depth=unit_queue_depth,
                     row_bits=row_bits, dram_bits=dram_bits, registered_head=registered_head,
                     outstanding=outstanding)
    rng = np.random.default_rng(seed)
    log, state = [], {"done": 0, "error": ErrorCause.NONE, "unit": 0, "cycle": 0}

    async def host(ctx):
        ctx.set(dut.run, run)
        for i, word in enumerate(words):
            if host_waits and i % (INSN_WIDTH // 32) == 0:
                ctx.set(dut.words.valid, 0)
                await ctx.tick()  # `free` counts the instruction just pushed
                while not ctx.get(dut.free):
                    await ctx.tick()
            ctx.set(dut.words.valid, 1)
            ctx.set(dut.words.payload, word)
            await ctx.tick()
        ctx.set(dut.words.valid, 0)

    def stand_in(name):
        port = getattr(dut, name)

        async def unit(ctx):
            finishing = []  # cycles at which the taken instructions finish, in order
            taken = []      # cycles at which they were taken
            async for _, _, valid, ready, payload in ctx.tick().sample(
                    port.insn.valid, port.insn.ready, port.insn.payload):
                cycle = state["cycle"]
                if valid and ready:
                    insn = decode(int(payload))
                    log.append((cycle, name, "start", insn))
                    last = finishing[-1] if finishing else cycle
                    finishing.append(max(last, cycle) + int(rng.integers(*latency)))
                    taken.append(cycle)
                done = bool(finishing) and finishing[0] <= cycle
                if done:
                    finishing.pop(0)
                    taken.pop(0)
                    log.append((cycle, name, "done", None))
                ctx.set(port.done, done)
                # `busy` rises a cycle late (as behind a unit's input FIFO): the dispatcher
                # must not take the unit for idle in between.
                ctx.set(port.busy, any(t < cycle for t in taken))
                ctx.set(port.insn.ready, rng.random() < 0.7)
        return unit

    async def monitor(ctx):
        async for _, _, done, error, unit in ctx.tick().sample(dut.done, dut.error,
                                                                dut.error_unit):
            state["done"] += done
            state["error"], state["unit"] = error, unit
            state["cycle"] += 1

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(host)
    for bench in [stand_in(name) for name in UNITS] + [monitor]:
        sim.add_testbench(bench, background=True)
    sim.run_until(CLOCK * cycles)
    return log, state


def words_of(program):
    return [word for insn in program for word in to_words(insn)]


@pytest.mark.parametrize("registered_head, queue_depth", [(True, 8), (False, 8), (False, 3)])
def test_program_order_per_unit_and_end(registered_head, queue_depth):
    program = [load(), exec_(), store(), load(), exec_(), store(), END]
    log, state = run_dispatcher(words_of(program), seed=1, queue_depth=queue_depth,
                                registered_head=registered_head)
    for name in UNITS:
        started = [insn for _, unit, event, insn in log if unit == name and event == "start"]
        assert started == [insn for insn in program if insn.unit.name.lower() == name]
    assert state["done"] == 1 and state["error"] == ErrorCause.NONE
    # END completes only after every unit finished everything.
    last_done = max(cycle for cycle, _, event, _ in log if event == "done")
    assert last_done < 3000


@pytest.mark.parametrize("registered_head", [False, True])
@pytest.mark.parametrize("unit_queue_depth", [1, 2, 4])
@pytest.mark.parametrize("seed", range(4))
def test_tokens_order_the_units(seed, unit_queue_depth, registered_head):
    """A double-buffered pattern: each EXEC starts after its LOAD is done, each LOAD after
    the EXEC two before it is done, each STORE after its EXEC, and no token is left."""
    groups = 6
    program = []
    for g in range(groups):
        program.append(load(pop_next=g >= 2, push_next=True))
        program.append(exec_(pop_prev=True, push_prev=g + 2 < groups, push_next=True))
        program.append(store(pop_prev=True))
    program.append(END)
    log, state = run_dispatcher(words_of(program), seed=seed, queue_depth=4,
                                unit_queue_depth=unit_queue_depth,
                                registered_head=registered_head)
    assert state["done"] == 1 and state["error"] == ErrorCause.NONE, state

    def times(name, event):
        return [cycle for cycle, unit, e, _ in log if unit == name and e == event]

    load_start, load_done = times("load", "start"), times("load", "done")
    exec_start, exec_done = times("exec", "start"), times("exec", "done")
    store_start = times("store", "start")
    for g in range(groups):
        assert exec_start[g] > load_done[g], f"seed={seed}: EXEC {g} before its LOAD"
        assert store_start[g] > exec_done[g], f"seed={seed}: STORE {g} before its EXEC"
        if g >= 2:
            assert load_start[g] > exec_done[g - 2], f"seed={seed}: LOAD {g} too early"


@pytest.mark.parametrize("seed", range(2))
def test_outstanding_caps(seed):
    """Units with fewer unfinished instructions allowed (as slow clocks give LOAD and EXEC)
    get no more, and the program still runs in order to its END."""
    caps = {"load": 1, "exec": 2, "store": 3}
    program = [load()] * 6 + [exec_()] * 6 + [store()] * 6 + [END]
    log, state = run_dispatcher(words_of(program), seed=seed, latency=(8, 20), queue_depth=32,
                                unit_queue_depth=1, registered_head=False, outstanding=caps)
    assert state["done"] == 1 and state["error"] == ErrorCause.NONE, state
    for name, cap in caps.items():
        open_ = 0
        for _, unit, event, _ in log:
            if unit == name:
                open_ += 1 if event == "start" else -1
                assert open_ <= cap, f"seed={seed}: {name} has {open_} unfinished"


@pytest.mark.parametrize("name", ["queue_depth", "unit_queue_depth"])
def test_queue_depths_checked(name):
    with pytest.raises(ValueError, match=rf"^{name} must be a positive integer, not 0$"):
        Dispatcher(**{name: 0})


def test_nothing_moves_without_run():
    log, state = run_dispatcher(words_of([load(), END]), seed=2, run=False, cycles=200)
    assert log == [] and state["done"] == 0


@pytest.mark.parametrize("words, cause", [
    ([0x5, 0, 0, 0], ErrorCause.UNDEFINED_OPCODE),
    ([0x7 | 1 << 4, 0, 0, 0], ErrorCause.MALFORMED),  # END with pop_next
], ids=["undefined", "end-with-flags"])
def test_decode_errors(words, cause):
    log, state = run_dispatcher(words + words_of([load(), END]), seed=3, cycles=300)
    assert (state["error"], state["unit"]) == (cause, Unit.DISPATCH.value)
    assert log == [] and state["done"] == 0


@pytest.mark.parametrize("registered_head", [False, True])
def test_queue_full(registered_head):
    """More instructions than the queue holds, with run low: the first extra word latches
    QUEUE_FULL."""
    program = [load()] * 5
    log, state = run_dispatcher(words_of(program), seed=4, queue_depth=4, run=False,
                                cycles=200, registered_head=registered_head)
    assert state["error"] == ErrorCause.QUEUE_FULL


def test_token_underflow_at_end():
    """An EXEC that waits for a token no LOAD gives: at END it is an error, not a hang."""
    program = [load(), exec_(pop_prev=True), END]
    log, state = run_dispatcher(words_of(program), seed=5, cycles=300)
    assert (state["error"], state["unit"]) == (ErrorCause.TOKEN_UNDERFLOW,
                                               Unit.DISPATCH.value)
    assert state["done"] == 0


@pytest.mark.parametrize("unit_queue_depth", [1, 4])
@pytest.mark.parametrize("extra", [0, 1])
def test_token_overflow(unit_queue_depth, extra):
    """MAX_TOKENS LOADs give EXEC a token each, then EXECs take them all: no error. One LOAD
    more and no EXEC: TOKEN_OVERFLOW (the counters do not wrap silently)."""
    execs = 0 if extra else MAX_TOKENS
    program = [load(push_next=True)] * (MAX_TOKENS + extra) + [exec_(pop_prev=True)] * execs
    log, state = run_dispatcher(words_of(program + [END]), seed=9, latency=(1, 3),
                                host_waits=True, unit_queue_depth=unit_queue_depth,
                                cycles=7000)
    started = [unit for _, unit, event, _ in log if event == "start"]
    if extra:
        assert (state["error"], state["unit"]) == (ErrorCause.TOKEN_OVERFLOW,
                                                   Unit.DISPATCH.value), state
        assert started.count("load") == MAX_TOKENS + 1 and state["done"] == 0
    else:
        assert state["error"] == ErrorCause.NONE and state["done"] == 1, state
        assert started.count("load") == started.count("exec") == MAX_TOKENS


def test_narrow_row_fields():
    """With row_bits, a row field below 2**row_bits reaches its unit unchanged; one above
    keeps its low bits and reads all ones above them (out of range, as it was)."""
    exec_fields = dict(weight_addr=5, act_addr=0x1234, acc_addr=31, rows=32, preload=1,
                       accumulate=0)
    load_fields = dict(sp_addr=0x123, rows=7, dram_addr=0x40, dram_stride=0x1004)
    program = [Instruction(Opcode.EXEC, exec_fields), Instruction(Opcode.LOAD, load_fields),
               END]
    log, _ = run_dispatcher(words_of(program), seed=6, row_bits=5, cycles=300)
    started = {unit: insn.operands for _, unit, event, insn in log if event == "start"}
    assert started["exec"] == dict(exec_fields, act_addr=0xfff4, rows=0xffe0)
    assert started["load"] == dict(load_fields, sp_addr=0xffe3)


def test_narrow_dram_fields():
    """With dram_bits, a system-memory address or stride keeps its low bits and reads all
    ones above them when a higher bit was set; STORE's row fields (where CONFIG's address
    is) fold only within CONFIG's high address bits, so CONFIG's address stays exact below
    ``dram_bits`` and nonzero above it exactly when it was."""
    load_fields = dict(sp_addr=0x123, rows=7, dram_addr=0x12345678, dram_stride=0x1004)
    store_fields = dict(acc_addr=0x1234, rows=0x1005, dest=0x10020, dram_stride=0x40, mode=2,
                        to_sp=1)
    program = [Instruction(Opcode.LOAD, load_fields), Instruction(Opcode.STORE, store_fields)]
    program += [Instruction(Opcode.CONFIG, dict(dram_addr=addr))
                for addr in (0x10000, 0x20000100, 0xbeef)]
    program.append(END)
    log, _ = run_dispatcher(words_of(program), seed=7, row_bits=5, dram_bits=16, cycles=400)
    started = {}
    for _, unit, event, insn in log:
        if event == "start":
            started.setdefault(unit, []).append(insn.operands)
    assert started["load"] == [dict(load_fields, sp_addr=0xffe3, dram_addr=0xffff5678)]
    # STORE: acc_addr is kept whole (CONFIG's low address bits), rows fold above 5 bits
    # (CONFIG's address above 21), dest above 16.
    assert started["store"] == [dict(store_fields, rows=0xffe5, dest=0xffff0020),
                                dict(dram_addr=0x10000), dict(dram_addr=0xffe00100),
                                dict(dram_addr=0xbeef)]


@pytest.mark.parametrize("output_register", [False, True])
def test_word_queue_is_a_fifo(output_register):
    """The instruction queue's words against a Python FIFO: random pushes (never into a full
    queue) and random reads of the head (which stalls the head registers full); every word
    comes out once, in order."""
    seed = 31 + output_register
    print(f"seed={seed} output_register={output_register}")
    rng = np.random.default_rng(seed)
    depth = 8
    dut = _WordQueue(depth, output_register=output_register)
    words = [int(w) for w in rng.integers(0, 1 << 32, 600, dtype=np.uint64)]
    words[:4] = [0, 0xFFFFFFFF, 0x80000000, 0x7FFFFFFF]
    out = []

    async def bench(ctx):
        pushed, inside = 0, 0  # words pushed, words pushed and not read
        for _ in range(6000):
            push = pushed < len(words) and inside < depth and rng.random() < 0.6
            ready = ctx.get(dut.r_rdy)
            read = bool(ready) and rng.random() < 0.5
            if read:
                out.append(ctx.get(dut.r_data))
            ctx.set(dut.w_en, push)
            ctx.set(dut.w_data, words[pushed] if push else 0)
            ctx.set(dut.r_en, read)
            await ctx.tick()
            pushed += push
            inside += push - read
            if len(out) == len(words):
                break

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    sim.add_testbench(bench)
    sim.run()
    assert out == words
