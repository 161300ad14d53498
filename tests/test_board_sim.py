"""``tessera gemm --backend board-sim``: the iCEBreaker's board system (SB_MAC16 multipliers,
SPRAM system memory, UART host link) on Verilator with yosys' cell models, driven through its
UART pins by the same driver as the real board; and the host side of the serial link.

The simulator build (about a minute) is shared by every run of this file
(``build/board_sim/icebreaker/tiny/verilator``; :func:`sw.board_sim.run_board_gemms` runs one
at a time there, so parallel workers wait for each other instead of building twice)."""

import asyncio
import json

from hdl.config import preset
from hdl.host_link import Command
from hdl.registers import TESSERA_ID
from sim.tb_board import uart_bits
from sw.cli import main
from sw.link import BridgeModel, LinkBackend, ModelTransport

#: Odd shapes (not multiples of the 4x4 array), requantized and not; the seeds are fixed.
SHAPES = [dict(m=1, k=1, n=1, seed=801, requant=False),
          dict(m=5, k=9, n=6, seed=802, requant=True),
          dict(m=7, k=3, n=13, seed=803, requant=False)]
FAULT_SEED = 11


def cli_gemm(capsys, gemm, *extra):
    argv = ["gemm", "--backend", "board-sim", "--board", "icebreaker", "--m", str(gemm["m"]),
            "--k", str(gemm["k"]), "--n", str(gemm["n"]), "--seed", str(gemm["seed"]),
            "--json", *extra]
    if gemm["requant"]:
        argv.append("--requant")
    code = main(argv)
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return code, report


def test_board_sim_gemms_match_golden(capsys):
    for gemm in SHAPES:
        print(f"{gemm} (seed {gemm['seed']})")
        code, report = cli_gemm(capsys, gemm)
        with capsys.disabled():
            print(f"\n{gemm}: {report['wall_s']:.1f} s wall, {report['sim_cycles']} cycles, "
                  f"{report['board_ms']:.1f} ms on the board")
        assert report["match"], report.get("first_mismatch")
        assert code == 0
        assert report["board"] == "icebreaker" and report["config"] == "tiny"
        assert report["backend"] == "board-sim"
        assert report["retries"] == 0, report
        assert report["insn_count"] == report["instructions"], report
        for key in ("cycles", "macs", "utilization", "requests"):
            assert key in report


def test_board_sim_recovers_from_line_faults(capsys):
    """Bit flips in requests and replies and dropped request bytes (sim.tb_board.fault_plan):
    each is detected and retried once; the result is still bit-exact."""
    gemm = dict(m=6, k=5, n=7, seed=804, requant=True)
    print(f"{gemm}, fault seed {FAULT_SEED}")
    code, report = cli_gemm(capsys, gemm, "--faults", str(FAULT_SEED))
    with capsys.disabled():
        print(f"\nfaults {report['faults']}\nretries {report['problems']}")
    assert report["match"], report.get("first_mismatch")
    assert code == 0
    kinds = {kind for kind, _, _ in report["faults"]}
    assert kinds == {"request", "reply", "drop"}, report["faults"]
    assert report["faults_pending"] == 0 and len(report["faults"]) == 8, report["faults"]
    assert report["retries"] == len(report["faults"]), report["problems"]
    # The push whose reply was lost was executed once: its retry was answered, not executed.
    assert report["insn_count"] == report["instructions"], report


def test_uart_bits_are_8n1_lsb_first():
    assert uart_bits(0xA5) == [0, 1, 0, 1, 0, 0, 1, 0, 1, 1]
    assert uart_bits(0x00) == [0] * 9 + [1]
    assert uart_bits(0xFF) == [0] + [1] * 9


class CountingTransport(ModelTransport):
    """The bridge model behind a transport that records when it resynchronises."""

    def __init__(self, model, corrupt):
        super().__init__(model, corrupt)
        self.log = []

    async def send(self, data):
        self.log.append("send")
        await super().send(data)

    async def resync(self):
        self.log.append("resync")


class IdentOnly:
    """A register bank with only the ID register."""

    def read(self, addr):
        return (TESSERA_ID if addr == 0 else 0), 0


def test_link_backend_resyncs_before_each_retry():
    """Requests whose CRC byte is damaged (BAD_CRC): the transport resynchronises before
    every retry, and only then."""
    damaged = iter([False, False, True, False, True, True, False, False])

    def corrupt(direction, data):
        if direction == "request" and next(damaged):
            data = data[:-1] + bytes([data[-1] ^ 0x10])
        return data

    model = BridgeModel(ram=bytearray(64), csr=IdentOnly(), max_payload=16)
    transport = CountingTransport(model, corrupt)
    backend = LinkBackend(preset("tiny"), transport)

    async def exchange():
        await backend.request(Command.MEM_WRITE, 4, payload=b"\x01\x02\x03")
        await backend.request(Command.MEM_WRITE, 8, payload=b"\x04")
        return await backend.request(Command.MEM_READ, 4, 5)

    assert asyncio.run(exchange()) == b"\x01\x02\x03\x00\x04"
    assert transport.log == ["send", "send",  # PING, ID
                             "send", "resync", "send",  # the first write: BAD_CRC, then OK
                             "send", "resync", "send", "resync", "send",  # the second
                             "send"]
    assert backend.problems == [("MEM_WRITE", 1, "BAD_CRC"), ("MEM_WRITE", 1, "BAD_CRC"),
                                ("MEM_WRITE", 2, "BAD_CRC")]


def test_board_sim_several_gemms_in_one_run():
    """One simulation, several GEMMs on the same system: one big enough for transfers of
    several link frames (A 480 bytes, C 960 bytes in 252-byte frames), then small ones."""
    from sw.board_sim import run_board_gemms

    gemms = [dict(m=20, k=24, n=12, seed=805, requant=False),
             dict(m=4, k=4, n=4, seed=806, requant=True),
             dict(m=9, k=33, n=5, seed=807, requant=True)]
    print(f"seeds {[g['seed'] for g in gemms]}")
    reports = run_board_gemms("icebreaker", gemms)
    for gemm, report in zip(gemms, reports, strict=True):
        assert report["match"], (gemm, report.get("first_mismatch"))
        assert report["retries"] == 0 and report["insn_count"] == report["instructions"]


def test_board_sim_two_port_ram_on_ulx3s():
    """The ULX3S system (ECP5 cell models) with its two-port registered RAM
    (``ram_ports=2``) runs a GEMM bit-exact; with ``micro`` to keep the simulation small."""
    from sw.board_sim import board_system, run_board_gemms

    system, _ = board_system("ulx3s-85f", "micro")
    for block in (system, system._ram, system._uart):  # built for its parameters only
        block._MustUse__silence = True
    assert not system._ram.single_port and system._ram.registered
    gemm = dict(m=5, k=7, n=3, seed=811, requant=True)
    print(f"{gemm} (seed {gemm['seed']})")
    [report] = run_board_gemms("ulx3s-85f", [gemm], config="micro")
    assert report["match"], report.get("first_mismatch")
    assert report["retries"] == 0 and report["insn_count"] == report["instructions"]
