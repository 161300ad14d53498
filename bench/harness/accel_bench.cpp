// The whole Verilated accelerator (tessera_top) in a compiled harness, no Python per cycle.
//
// The harness is the host and the system memory: an AXI4-Lite master that sets CONTROL.RUN,
// pushes the program's instruction words into INSN (at most INSN_FREE instructions at a
// time) and polls STATUS until DONE (or ERROR); and an AXI4 memory answering AR/R and
// AW/W/B at one beat per cycle without back-pressure. Python (bench/accel_harness.py) writes
// the memory image and the program, and checks the output region against the golden model.
//
// Compile-time defines (from the register map and the config; nothing retyped here):
//   BUS_BYTES (4 or 8), CONTROL, STATUS, INSN, INSN_FREE, CYCLES_LO, CYCLES_HI, ERROR_CAUSE
//   (byte offsets), RUN (CONTROL value), BUSY, DONE, ERROR (STATUS masks)
// Command line: --memory FILE --program FILE --out-addr A --out-size N --out FILE
//   [--max-cycles C]
// Prints one JSON object: cycles (host view, RUN to DONE), busy_cycles (CYCLES counter),
// error_cause, wall_s, cycles_per_s.

#include "Vtessera_top.h"
#include "verilated.h"

#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#if !defined(BUS_BYTES) || !defined(CONTROL) || !defined(STATUS) || !defined(INSN) \
    || !defined(INSN_FREE) || !defined(CYCLES_LO) || !defined(CYCLES_HI) \
    || !defined(ERROR_CAUSE) || !defined(RUN) || !defined(BUSY) || !defined(DONE) \
    || !defined(ERROR)
#error "define BUS_BYTES and the register offsets and fields"
#endif
#if BUS_BYTES != 4 && BUS_BYTES != 8
#error "the harness handles 32- and 64-bit buses"
#endif

// Verilator escapes the double underscore of Amaranth's flattened port names.
#define PORT(bus, member) bus##___05F##member

namespace {

std::vector<uint8_t> read_file(const char *path) {
    FILE *file = std::fopen(path, "rb");
    if (!file) { std::perror(path); std::exit(2); }
    std::vector<uint8_t> data;
    uint8_t buffer[65536];
    size_t count;
    while ((count = std::fread(buffer, 1, sizeof buffer, file)) > 0)
        data.insert(data.end(), buffer, buffer + count);
    std::fclose(file);
    return data;
}

// One AXI4-Lite operation of the host.
struct CsrOp { bool write; uint32_t addr; uint32_t data; };

struct Burst { uint64_t addr; unsigned beats; unsigned id; };

}  // namespace

int main(int argc, char **argv) {
    const char *memory_path = nullptr, *program_path = nullptr, *out_path = nullptr;
    uint64_t out_addr = 0, out_size = 0, max_cycles = 50'000'000;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string flag = argv[i];
        if (flag == "--memory") memory_path = argv[i + 1];
        else if (flag == "--program") program_path = argv[i + 1];
        else if (flag == "--out") out_path = argv[i + 1];
        else if (flag == "--out-addr") out_addr = std::strtoull(argv[i + 1], nullptr, 0);
        else if (flag == "--out-size") out_size = std::strtoull(argv[i + 1], nullptr, 0);
        else if (flag == "--max-cycles") max_cycles = std::strtoull(argv[i + 1], nullptr, 0);
        else { std::fprintf(stderr, "unknown flag %s\n", argv[i]); return 2; }
    }
    if (!memory_path || !program_path || !out_path) {
        std::fprintf(stderr, "--memory, --program and --out are needed\n");
        return 2;
    }
    std::vector<uint8_t> memory = read_file(memory_path);
    std::vector<uint8_t> program_bytes = read_file(program_path);
    std::vector<uint32_t> words(program_bytes.size() / 4);
    std::memcpy(words.data(), program_bytes.data(), words.size() * 4);

    auto context = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vtessera_top>(context.get());

    // Reset.
    top->clk = 0;
    top->rst = 1;
    for (int i = 0; i < 4; ++i) {
        top->clk = 0; top->eval();
        top->clk = 1; top->eval();
    }
    top->rst = 0;

    // Host state: a queue of CSR operations, refilled by the host's program below.
    std::deque<CsrOp> ops;
    enum { PUSHING, ASK_FREE, POLLING, READ_COUNTERS, FINISHED } phase = ASK_FREE;
    size_t next_word = 0;
    bool aw_done = false, w_done = false, waiting_b = false, ar_done = false;
    bool waiting_r = false, op_active = false;
    uint32_t last_read = 0;
    bool read_ready = false;
    uint32_t error_cause = 0, cycles_lo = 0, cycles_hi = 0;
    ops.push_back({true, CONTROL, RUN});
    ops.push_back({false, INSN_FREE, 0});

    // Memory state.
    std::deque<Burst> reads, writes;
    unsigned read_beat = 0, write_beat = 0;
    std::deque<unsigned> responses;  // B responses due (IDs)

    auto mem_at = [&](uint64_t addr) -> uint8_t * {
        if (addr + BUS_BYTES > memory.size()) {
            std::fprintf(stderr, "access outside the memory at %#" PRIx64 "\n", addr);
            std::exit(3);
        }
        return memory.data() + addr;
    };

    uint64_t cycle = 0, run_cycle = 0, done_cycle = 0;
    auto start = std::chrono::steady_clock::now();
    while (phase != FINISHED) {
        if (++cycle > max_cycles) {
            std::fprintf(stderr, "no DONE after %" PRIu64 " cycles\n", max_cycles);
            return 4;
        }
        // --- Inputs for this cycle. ---
        // CSR master.
        if (!op_active && !ops.empty()) {
            op_active = true;
            aw_done = w_done = ar_done = waiting_b = waiting_r = false;
        }
        const CsrOp *op = op_active ? &ops.front() : nullptr;
        top->PORT(csr, awvalid) = op && op->write && !aw_done;
        top->PORT(csr, awaddr) = op ? op->addr : 0;
        top->PORT(csr, wvalid) = op && op->write && !w_done;
        top->PORT(csr, wdata) = op ? op->data : 0;
        top->PORT(csr, wstrb) = 0xF;
        top->PORT(csr, bready) = 1;
        top->PORT(csr, arvalid) = op && !op->write && !ar_done;
        top->PORT(csr, araddr) = op ? op->addr : 0;
        top->PORT(csr, rready) = 1;
        // Memory: R beats of the oldest read burst, B responses, always ready otherwise.
        top->PORT(mem, arready) = 1;
        top->PORT(mem, awready) = 1;
        top->PORT(mem, wready) = 1;
        bool r_valid = !reads.empty();
        top->PORT(mem, rvalid) = r_valid;
        if (r_valid) {
            const Burst &burst = reads.front();
            uint64_t data = 0;
            std::memcpy(&data, mem_at(burst.addr + read_beat * BUS_BYTES), BUS_BYTES);
            top->PORT(mem, rdata) = data;
            top->PORT(mem, rlast) = read_beat + 1 == burst.beats;
            top->PORT(mem, rid) = burst.id;
            top->PORT(mem, rresp) = 0;
        }
        top->PORT(mem, bvalid) = !responses.empty();
        top->PORT(mem, bid) = responses.empty() ? 0 : responses.front();
        top->PORT(mem, bresp) = 0;

        top->clk = 0;
        top->eval();
        // --- Handshakes at this rising edge. ---
        bool csr_aw = top->PORT(csr, awvalid) && top->PORT(csr, awready);
        bool csr_w = top->PORT(csr, wvalid) && top->PORT(csr, wready);
        bool csr_b = top->PORT(csr, bvalid) && top->PORT(csr, bready);
        bool csr_ar = top->PORT(csr, arvalid) && top->PORT(csr, arready);
        bool csr_r = top->PORT(csr, rvalid) && top->PORT(csr, rready);
        uint32_t csr_rdata = top->PORT(csr, rdata);
        bool mem_ar = top->PORT(mem, arvalid) && top->PORT(mem, arready);
        Burst ar{top->PORT(mem, araddr), (unsigned)top->PORT(mem, arlen) + 1u,
                 (unsigned)top->PORT(mem, arid)};
        bool mem_r = r_valid && top->PORT(mem, rready);
        bool mem_aw = top->PORT(mem, awvalid) && top->PORT(mem, awready);
        Burst aw{top->PORT(mem, awaddr), (unsigned)top->PORT(mem, awlen) + 1u,
                 (unsigned)top->PORT(mem, awid)};
        bool mem_w = top->PORT(mem, wvalid) && top->PORT(mem, wready);
        uint64_t wdata = top->PORT(mem, wdata);
        bool mem_b = !responses.empty() && top->PORT(mem, bready);
        top->clk = 1;
        top->eval();

        // --- Harness state after the edge. ---
        if (mem_ar) reads.push_back(ar);
        if (mem_r && ++read_beat == reads.front().beats) { reads.pop_front(); read_beat = 0; }
        if (mem_aw) writes.push_back(aw);
        if (mem_b) responses.pop_front();
        if (mem_w) {
            if (writes.empty()) { std::fprintf(stderr, "W before its AW\n"); return 3; }
            const Burst &burst = writes.front();
            std::memcpy(mem_at(burst.addr + write_beat * BUS_BYTES), &wdata, BUS_BYTES);
            if (++write_beat == burst.beats) {
                responses.push_back(burst.id);
                writes.pop_front();
                write_beat = 0;
            }
        }
        if (op) {
            if (op->write) {
                aw_done |= csr_aw;
                w_done |= csr_w;
                if (csr_b) { op_active = false; ops.pop_front(); }
            } else {
                ar_done |= csr_ar;
                if (csr_r) {
                    last_read = csr_rdata;
                    read_ready = true;
                    op_active = false;
                    ops.pop_front();
                }
            }
        }
        // The host's program: runs when its queue is empty.
        if (!ops.empty() || op_active) continue;
        if (phase == ASK_FREE && read_ready) {
            read_ready = false;
            size_t take = std::min<size_t>(4u * last_read, words.size() - next_word);
            for (size_t i = 0; i < take; ++i) ops.push_back({true, INSN, words[next_word++]});
            if (run_cycle == 0) run_cycle = cycle;
            if (next_word == words.size()) {
                phase = POLLING;
                ops.push_back({false, STATUS, 0});
            } else {
                ops.push_back({false, INSN_FREE, 0});
            }
        } else if (phase == POLLING && read_ready) {
            read_ready = false;
            if (last_read & ERROR) {
                phase = READ_COUNTERS;
                ops.push_back({false, ERROR_CAUSE, 0});
            } else if ((last_read & DONE) && !(last_read & BUSY)) {
                done_cycle = cycle;
                phase = READ_COUNTERS;
                ops.push_back({false, ERROR_CAUSE, 0});
            } else {
                ops.push_back({false, STATUS, 0});
            }
        } else if (phase == READ_COUNTERS && read_ready) {
            read_ready = false;
            error_cause = last_read;
            ops.push_back({false, CYCLES_LO, 0});
            ops.push_back({false, CYCLES_HI, 0});
            phase = FINISHED;
        }
    }
    // The two counter reads are still queued: run them.
    std::vector<uint32_t> counters;
    while (!ops.empty() || op_active) {
        if (!op_active) { op_active = true; ar_done = false; }
        const CsrOp &op = ops.front();
        top->PORT(csr, awvalid) = 0;
        top->PORT(csr, wvalid) = 0;
        top->PORT(csr, arvalid) = !ar_done;
        top->PORT(csr, araddr) = op.addr;
        top->PORT(csr, rready) = 1;
        top->clk = 0; top->eval();
        bool csr_ar = top->PORT(csr, arvalid) && top->PORT(csr, arready);
        bool csr_r = top->PORT(csr, rvalid) && top->PORT(csr, rready);
        uint32_t data = top->PORT(csr, rdata);
        top->clk = 1; top->eval();
        ar_done |= csr_ar;
        if (csr_r) { counters.push_back(data); ops.pop_front(); op_active = false; }
        ++cycle;
    }
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    cycles_lo = counters.size() > 0 ? counters[0] : 0;
    cycles_hi = counters.size() > 1 ? counters[1] : 0;

    FILE *out = std::fopen(out_path, "wb");
    if (!out) { std::perror(out_path); return 2; }
    if (out_addr + out_size <= memory.size())
        std::fwrite(memory.data() + out_addr, 1, out_size, out);
    std::fclose(out);
    top->final();
    std::printf("{\"cycles\": %" PRIu64 ", \"busy_cycles\": %" PRIu64 ", \"error_cause\": %u, "
                "\"simulated_cycles\": %" PRIu64 ", \"wall_s\": %.6f, \"cycles_per_s\": %.1f}\n",
                done_cycle - run_cycle, ((uint64_t)cycles_hi << 32) | cycles_lo,
                error_cause & 0xFF, cycle, wall, cycle / wall);
    return 0;
}
