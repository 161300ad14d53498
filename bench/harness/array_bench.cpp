// Streaming benchmark of the Verilated systolic array (tessera_systolic), no Python per cycle.
//
// Drives pseudo-random weight tiles and activation rows at full rate (results.ready always
// high), checks every result row against a C++ reference of the array's transaction-level
// behaviour (sim/model.py), and prints one JSON object with the cycle counts and the wall time.
//
// The array's parameters come as compile-time defines (see bench/verilator_bench.py):
//   DIM, ACT_W, ACT_S, W_W, W_S, ACC_W, TAG_W
// Command line: --tiles T --rows-per-tile R [--bubble] [--seed S]
//   T tiles of R activation rows each; the first row of a tile has swap set. With --bubble,
//   acts.valid is low for one cycle before every swap row.

#include "Vtessera_systolic.h"
#include "verilated.h"

#include <array>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <type_traits>
#include <vector>

#if !defined(DIM) || !defined(ACT_W) || !defined(ACT_S) || !defined(W_W) || !defined(W_S) \
    || !defined(ACC_W) || !defined(TAG_W)
#error "define DIM, ACT_W, ACT_S, W_W, W_S, ACC_W and TAG_W"
#endif

// Verilator escapes the double underscore of Amaranth's flattened port names.
#define PORT(stream, member) stream##___05F##member

namespace {

// Payload layouts (hdl/systolic.py), fields LSB first:
//   weight row: DIM x W_W lanes, last
//   act row:    DIM x ACT_W lanes, swap, tag
//   result row: DIM x ACC_W lanes, tag
constexpr int kWeightBits = DIM * W_W + 1;
constexpr int kActBits = DIM * ACT_W + 1 + TAG_W;
constexpr int kResultBits = DIM * ACC_W + TAG_W;
constexpr int kMaxBits = kResultBits > kActBits ? kResultBits : kActBits;
constexpr uint64_t kPool = 4096;  // random rows to draw from

struct Bits {
    std::array<uint32_t, (kMaxBits + 31) / 32 + 3> w{};  // slack: a field may span 3 words

    void set(int lsb, int width, uint64_t value) {  // width <= 64
        using u128 = unsigned __int128;
        const uint64_t mask = width >= 64 ? ~0ull : (1ull << width) - 1;
        const u128 m = u128(mask) << (lsb % 32), v = u128(value & mask) << (lsb % 32);
        for (int i = 0; i < 3; ++i) {
            uint32_t& word = w[lsb / 32 + i];
            word = (word & ~uint32_t(m >> (32 * i))) | uint32_t(v >> (32 * i));
        }
    }
    uint64_t get(int lsb, int width) const {  // width <= 64
        using u128 = unsigned __int128;
        const int at = lsb / 32;
        const u128 v = u128(w[at]) | (u128(w[at + 1]) << 32) | (u128(w[at + 2]) << 64);
        const uint64_t mask = width >= 64 ? ~0ull : (1ull << width) - 1;
        return uint64_t(v >> (lsb % 32)) & mask;
    }
};

// Ports up to 64 bits are plain integers, wider ones VlWide<N>.
template <typename T>
std::enable_if_t<std::is_integral<T>::value> store(T& port, const Bits& b) {
    port = static_cast<T>(uint64_t(b.w[0]) | (uint64_t(b.w[1]) << 32));
}
template <std::size_t N>
void store(VlWide<N>& port, const Bits& b) {
    for (std::size_t i = 0; i < N; ++i) port[i] = b.w[i];
}
template <typename T>
std::enable_if_t<std::is_integral<T>::value> load(const T& port, Bits& b) {
    b.w[0] = uint32_t(uint64_t(port));
    b.w[1] = uint32_t(uint64_t(port) >> 32);
}
template <std::size_t N>
void load(const VlWide<N>& port, Bits& b) {
    for (std::size_t i = 0; i < N; ++i) b.w[i] = port[i];
}

int64_t wrap(int64_t value, int width, bool is_signed) {
    const uint64_t mask = width >= 64 ? ~0ull : (1ull << width) - 1;
    uint64_t v = uint64_t(value) & mask;
    if (is_signed && width < 64 && (v >> (width - 1)) & 1) v |= ~mask;
    return int64_t(v);
}

struct Rng {  // splitmix64
    uint64_t state;
    uint64_t next() {
        uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
};

using Row = std::array<int64_t, DIM>;
using Tile = std::array<Row, DIM>;

struct Expected {
    Row row;
    uint64_t tag;
};

}  // namespace

int main(int argc, char** argv) {
    long long tiles = 1000, rows_per_tile = DIM;
    bool bubble = false;
    uint64_t seed = 1;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--tiles") && i + 1 < argc) tiles = std::atoll(argv[++i]);
        else if (!std::strcmp(argv[i], "--rows-per-tile") && i + 1 < argc)
            rows_per_tile = std::atoll(argv[++i]);
        else if (!std::strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = std::strtoull(argv[++i], nullptr, 0);
        else if (!std::strcmp(argv[i], "--bubble")) bubble = true;
        else {
            std::fprintf(stderr, "usage: %s --tiles T --rows-per-tile R [--bubble] [--seed S]\n",
                         argv[0]);
            return 2;
        }
    }
    if (tiles < 1 || rows_per_tile < 1) {
        std::fprintf(stderr, "tiles and rows-per-tile must be positive\n");
        return 2;
    }
    const long long total_rows = tiles * rows_per_tile;
    const uint64_t tag_mask = (1ull << TAG_W) - 1;

    const std::unique_ptr<VerilatedContext> ctx{new VerilatedContext};
    ctx->commandArgs(argc, argv);
    const std::unique_ptr<Vtessera_systolic> top{new Vtessera_systolic{ctx.get(), "top"}};

    Rng rng{seed};
    // Reference state, as in sim/model.py: shadow tile, completed tile, active tile.
    Tile shadow{}, completed{}, active{};
    bool have_completed = false;
    std::deque<Expected> expected;

    // Pools of random rows (lane bits and the lanes decoded from them), used round robin so
    // that the harness spends its time in the model rather than in the random generator.
    struct PoolRow {
        Bits bits;
        Row row;
    };
    auto make_pool = [&](int width, bool is_signed) {
        std::vector<PoolRow> pool(kPool);
        const int lane_bits = DIM * width;
        for (auto& p : pool) {
            for (int i = 0; i < int(p.bits.w.size()); ++i)
                p.bits.w[i] = i * 32 < lane_bits ? uint32_t(rng.next()) : 0;
            if (lane_bits % 32) p.bits.w[lane_bits / 32] &= (1u << (lane_bits % 32)) - 1;
            for (int n = 0; n < DIM; ++n)
                p.row[n] = wrap(int64_t(p.bits.get(n * width, width)), width, is_signed);
        }
        return pool;
    };
    const std::vector<PoolRow> wpool = make_pool(W_W, W_S), apool = make_pool(ACT_W, ACT_S);

    // Weight driver: an endless supply of random tiles, valid always high.
    int w_index = 0;
    const Row* w_row = nullptr;
    Bits wbits;
    auto next_weight_row = [&] {
        const PoolRow& p = wpool[uint64_t(rng.next()) % kPool];
        w_row = &p.row;
        wbits = p.bits;
        wbits.set(DIM * W_W, 1, w_index == DIM - 1);
        store(top->PORT(weights, payload), wbits);
    };

    // Activation driver: row act_index of tile act_index / rows_per_tile.
    long long act_index = 0;
    bool swap = false, bubble_done = false;
    const Row* a_row = nullptr;
    Bits abits;
    auto next_act_row = [&] {
        swap = act_index % rows_per_tile == 0;
        bubble_done = false;
        const PoolRow& p = apool[uint64_t(rng.next()) % kPool];
        a_row = &p.row;
        abits = p.bits;
        abits.set(DIM * ACT_W, 1, swap);
        abits.set(DIM * ACT_W + 1, TAG_W, uint64_t(act_index) & tag_mask);
        store(top->PORT(acts, payload), abits);
    };

    // Reset.
    top->clk = 0;
    top->rst = 1;
    top->PORT(weights, valid) = 0;
    top->PORT(acts, valid) = 0;
    top->PORT(results, ready) = 0;
    for (int i = 0; i < 3; ++i) {
        top->clk = 0;
        top->eval();
        ctx->timeInc(1);
        top->clk = 1;
        top->eval();
        ctx->timeInc(1);
    }
    top->rst = 0;
    next_weight_row();
    next_act_row();

    long long cycle = 0, accepted = 0, received = 0, mismatches = 0, weight_rows = 0;
    long long first_accept = -1, last_accept = -1, last_result = -1;
    uint64_t checksum = 0;
    const long long max_cycles = 4 * total_rows + 64 * DIM + 1000;
    Bits rbits;

    const auto start = std::chrono::steady_clock::now();
    for (; received < total_rows && cycle < max_cycles; ++cycle) {
        // Drive this cycle's valids (payloads are already set), let the outputs settle.
        const bool act_valid = act_index < total_rows && !(bubble && swap && !bubble_done);
        top->PORT(weights, valid) = 1;
        top->PORT(acts, valid) = act_valid;
        top->PORT(results, ready) = 1;
        top->clk = 0;
        top->eval();
        ctx->timeInc(1);

        const bool w_fire = top->PORT(weights, ready);
        const bool a_fire = act_valid && top->PORT(acts, ready);
        if (top->PORT(results, valid)) {
            load(top->PORT(results, payload), rbits);
            bool ok = !expected.empty();
            const Expected want = ok ? expected.front() : Expected{};
            if (ok) expected.pop_front();
            for (int n = 0; n < DIM; ++n) {
                const int64_t got = wrap(int64_t(rbits.get(n * ACC_W, ACC_W)), ACC_W, true);
                ok = ok && got == want.row[n];
                checksum = (checksum ^ uint64_t(got)) * 0x100000001b3ull;
            }
            ok = ok && rbits.get(DIM * ACC_W, TAG_W) == want.tag;
            mismatches += !ok;
            ++received;
            last_result = cycle;
        }

        // Rising edge: the registers take this cycle's transfers.
        top->clk = 1;
        top->eval();
        ctx->timeInc(1);

        if (w_fire) {
            shadow[w_index] = *w_row;
            if (w_index == DIM - 1) {
                completed = shadow;
                have_completed = true;
            }
            w_index = (w_index + 1) % DIM;
            ++weight_rows;
            next_weight_row();
        }
        if (bubble && swap) bubble_done = true;  // the idle cycle before a swap row is over
        if (a_fire) {
            if (swap) {
                if (!have_completed) ++mismatches;  // the array swapped in an incomplete tile
                active = completed;
                have_completed = false;
            }
            Expected e;
            for (int n = 0; n < DIM; ++n) {
                int64_t sum = 0;
                for (int k = 0; k < DIM; ++k) sum += (*a_row)[k] * active[k][n];
                e.row[n] = wrap(sum, ACC_W, true);
            }
            e.tag = uint64_t(act_index) & tag_mask;
            expected.push_back(e);
            if (first_accept < 0) first_accept = cycle;
            last_accept = cycle;
            ++accepted;
            ++act_index;
            if (act_index < total_rows) next_act_row();
        }
    }
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const bool error = top->error;
    top->final();

    std::printf(
        "{\"dim\": %d, \"tiles\": %lld, \"rows_per_tile\": %lld, \"bubble\": %s, "
        "\"cycles\": %lld, \"wall_s\": %.6f, \"accepted\": %lld, \"results\": %lld, "
        "\"weight_rows\": %lld, \"mismatches\": %lld, \"checksum\": %" PRIu64 ", "
        "\"first_accept\": %lld, \"last_accept\": %lld, \"last_result\": %lld, "
        "\"error\": %s, \"timed_out\": %s}\n",
        DIM, tiles, rows_per_tile, bubble ? "true" : "false", cycle, wall, accepted, received,
        weight_rows, mismatches, checksum, first_accept, last_accept, last_result,
        error ? "true" : "false", received < total_rows ? "true" : "false");
    return (mismatches || error || received != total_rows) ? 1 : 0;
}
