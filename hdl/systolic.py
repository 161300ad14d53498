"""Weight-stationary systolic array with streaming weights, activations and results."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .ecp5_mult import ECP5Multiplier, dsp_floorplan
from .ice40_dual_mult import ICE40DualMultiplier
from .multiplier import sum_shape
from .pe import ProcessingElement
from .response_buffer import ResponseBuffer

__all__ = ["SystolicArray", "act_row_layout", "result_row_layout", "weight_row_layout"]


def weight_row_layout(config):
    """Row ``k`` of a K x N weight tile, and whether it is the tile's last row."""
    return data.StructLayout({
        "row": data.ArrayLayout(config.weight_shape, config.dim),
        "last": 1,
    })


def act_row_layout(config, tags=True):
    """One K-vector of activations, the swap flag and (``tags``) the tag returned with the
    result."""
    return data.StructLayout({
        "row": data.ArrayLayout(config.act_shape, config.dim),
        "swap": 1,
        **({"tag": config.tag_width} if tags else {}),
    })


def result_row_layout(config, tags=True):
    """One N-vector of sums and (``tags``) the tag of the activation row it came from."""
    return data.StructLayout({
        "row": data.ArrayLayout(config.acc_shape, config.dim),
        **({"tag": config.tag_width} if tags else {}),
    })


def _delayed(m, value, cycles, name, reset_less=False):
    """``value`` delayed by ``cycles`` registers (``cycles`` may be 0)."""
    for i in range(cycles):
        stage = Signal.like(value, name=f"{name}_d{i + 1}", reset_less=reset_less)
        m.d.sync += stage.eq(value)
        value = stage
    return value


class SystolicArray(wiring.Component):
    """A ``dim`` x ``dim`` weight-stationary systolic array: ``results = acts @ weights``.

    PE (k, n) holds weight ``W[k][n]`` of a K x N tile. Activation lane k enters row k from the
    left, skewed by k cycles; partial sums flow down each column. Systolic (the default at
    fast clocks): activations hop one column per cycle, so column n leaves the bottom n cycles
    after column 0 and is de-skewed, so a whole result row appears at once. Broadcast (the
    default at slow clocks, ``config.fast_clock`` false): row k's activation reaches all its
    columns in the same cycle, the columns run in lockstep and need no de-skew: ``dim - 1``
    cycles less latency and no activation, swap, weight or de-skew delay registers (a wire
    fanning out to ``dim`` PEs instead of one hop per PE).

    Weights: the ``dim`` rows of a tile (k = 0..dim-1 in order, ``last`` on row dim-1) fill the
    shadow registers, each write travelling across the array one column per cycle (systolic;
    all columns at once when broadcast) behind the swap wave of the tile before, so the next
    tile loads while the current one computes.
    Activations: a row with ``swap`` set is the first to use the most recently completed shadow
    tile; it waits (``acts.ready`` low) until that tile's last row has been accepted. A completed
    tile not yet swapped in holds ``weights.ready`` low, except in the cycle a swap is accepted,
    when the first row of the following tile may enter.

    Timing:

    - Latency: :attr:`latency` = ``2 * dim + product_stages`` cycles (``2 * dim + 1`` by
      default; ``dim + 1 + product_stages`` broadcast, ``dim > 1``) from an accepted
      activation row to its result row on ``results`` (with an empty output buffer).
    - Throughput: one activation row (``dim * dim`` MACs) and one weight row per cycle; tile
      switches cost no bubble when each tile gets at least ``dim`` activation rows.
    - Back-pressure: rows in flight land in an output buffer of :attr:`buffer_depth` entries;
      ``acts.ready`` is credit based (rows in flight plus buffered < depth), so when
      ``results.ready`` is low the array keeps running, nothing is dropped or duplicated, and
      the full rate is sustained whenever ``results.ready`` stays high.
      With ``result_buffer=False`` there is no buffer (:attr:`buffer_depth` is 0) and
      ``results`` is always ready: a result row is on ``results`` for exactly the one cycle
      :attr:`latency` cycles after its activation row (one cycle less than with the buffer),
      for a consumer that takes a row every cycle (the accumulator's write port). That saves
      the buffer's ``latency + 1`` result rows of flip-flops.
    - Bubbles (``valid`` low) are allowed on every stream at any time.
    - Combinational paths: ``acts.ready`` depends on ``acts.valid`` and ``acts.payload.swap``,
      ``weights.ready`` on those too (the next tile's first row may enter in the cycle a swap
      is accepted). So a producer must not make ``acts.valid`` depend on ``weights.ready``,
      nor ``weights.valid`` on ``acts.ready``; ``valid`` never depends on ``ready`` anyway.

    Parameters
    ----------
    config : TesseraConfig
    result_buffer : bool
        Whether results leave through the credit-based output buffer (the default), or
        unbuffered on an always-ready ``results`` stream.
    tags : bool
        Whether the rows carry tags (the default). Without, the payloads have no ``tag``
        field and there are no tag registers, for an owner that counts its results in order.
    broadcast : bool or None
        Whether each row's activation is broadcast to its columns (see above); ``None``:
        broadcast unless ``config.fast_clock``.

    Members
    -------
    weights : In(stream.Signature(weight_row_layout(config)))
    acts : In(stream.Signature(act_row_layout(config, tags)))
    results : Out(stream.Signature(result_row_layout(config, tags),
                                   always_ready=not result_buffer))
    error : Out(1)
        Sticky: a weight row had ``last`` set where it should not, or missed it on row dim-1.
        The array still counts rows by position; only reset clears the flag.
    """

    def __init__(self, config, *, result_buffer=True, tags=True, broadcast=None):
        if broadcast is None:
            broadcast = not config.fast_clock
        for name, value in [("result_buffer", result_buffer), ("tags", tags),
                            ("broadcast", broadcast)]:
            if not isinstance(value, bool):
                self._MustUse__silence = True  # never built: no "created but never used" warning
                raise TypeError(f"{name} must be a bool, not {value!r}")
        self.config = config
        self.result_buffer = result_buffer
        self.tags = tags
        self.broadcast = broadcast
        super().__init__({
            "weights": In(stream.Signature(weight_row_layout(config))),
            "acts": In(stream.Signature(act_row_layout(config, tags))),
            "results": Out(stream.Signature(result_row_layout(config, tags),
                                            always_ready=not result_buffer)),
            "error": Out(1),
        })

    @property
    def latency(self):
        """Cycles from an accepted activation row to its result row."""
        dim = self.config.dim
        # Input register and row skew of the last row (rows 0 and 1 enter together: the top
        # row has no sum register), its product registers and sum register (none if it is
        # the top row), column hop n plus de-skew dim - 1 - n (systolic), and the output
        # buffer (if any).
        hops = 0 if self.broadcast else dim - 1
        return max(1, dim - 1) + self.config.product_stages + (dim > 1) + hops \
            + self.result_buffer

    @property
    def buffer_depth(self):
        """Result rows the output buffer holds: enough to run at full rate (0: no buffer)."""
        return self.latency + 1 if self.result_buffer else 0  # ResponseBuffer(latency - 1)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        dim = cfg.dim

        # --- Results leave through a credit-based buffer; it decides acts.ready. Without
        # one, they leave as they come (the consumer is always ready). ---
        if self.result_buffer:
            m.submodules.buffer = buffer = ResponseBuffer(result_row_layout(cfg, self.tags),
                                                          self.latency - 1)
            wiring.connect(m, wiring.flipped(self.results), buffer.output)
            results_ready, result, result_latency = buffer.ready, buffer.data, buffer.latency
        else:
            results_ready, result, result_latency = 1, self.results.payload, self.latency

        # --- Weights into the shadow registers. ---
        w_fire = self.weights.valid & self.weights.ready
        w_index = Signal(range(dim))
        w_is_last = w_index == dim - 1
        shadow_full = Signal()
        # A swap row waits for a completed tile. Gated by valid, so that `acts.ready` never
        # depends on the payload of an empty beat (an undriven payload is X in 4-state sims).
        swap_ready = ~(self.acts.valid & self.acts.payload.swap) | shadow_full
        act_ready = results_ready & swap_ready
        act_fire = self.acts.valid & act_ready
        swap_fire = act_fire & self.acts.payload.swap
        if self.result_buffer:
            m.d.comb += buffer.issue.eq(act_fire)
        else:
            m.d.comb += self.results.valid.eq(_delayed(m, act_fire, result_latency, "fired"))

        m.d.comb += [
            self.weights.ready.eq(~shadow_full | swap_fire),
            self.acts.ready.eq(act_ready),
        ]
        with m.If(w_fire):
            m.d.sync += w_index.eq(0 if dim == 1 else (w_index + 1))
            with m.If(w_is_last):
                m.d.sync += w_index.eq(0)
            with m.If(self.weights.payload.last != w_is_last):
                m.d.sync += self.error.eq(1)
        with m.If(w_fire & w_is_last):
            m.d.sync += shadow_full.eq(1)
        with m.Elif(swap_fire):
            m.d.sync += shadow_full.eq(0)

        # Row select of the accepted weight row, then column n sees it n cycles later.
        w_select = Signal(dim)
        m.d.comb += w_select.eq(Cat(w_fire & (w_index == k) for k in range(dim)))
        hop = 0 if self.broadcast else 1  # cycles from one column to the next
        col_select = [_delayed(m, w_select, hop * n, f"w_select_c{n}") for n in range(dim)]
        # Fast clocks: data registers keep no reset (see ProcessingElement's reset_less).
        data_reset_less = cfg.fast_clock
        col_weight = [_delayed(m, self.weights.payload.row[n], hop * n, f"w_c{n}",
                               data_reset_less) for n in range(dim)]

        # --- Activations: row k skewed by max(1, k) cycles (row 0's partial sum is its
        # product register, no sum register), its swap pulse one cycle earlier. ---
        row_act = [_delayed(m, self.acts.payload.row[k], max(1, k), f"a_r{k}", data_reset_less)
                   for k in range(dim)]
        swap_pulse = Signal()
        m.d.comb += swap_pulse.eq(swap_fire)
        row_swap = [_delayed(m, swap_pulse, max(1, k) - 1, f"swap_r{k}") for k in range(dim)]

        # --- The PE grid. Consecutive DSP PEs (row-major) pair up in a two-product DSP block
        # (an SB_MAC16 in 8x8 mode); broadcast, a pair in one row swaps together and keeps
        # its active weights in the block's input register. One-product DSP PEs (ECP5) each
        # keep theirs in their MULT18X18D's B register, and its product register. ---
        one_block = max(cfg.act_width, cfg.weight_width) <= 18  # a MULT18X18D's operands
        dsp_pes = [(k, n) for k in range(dim) for n in range(dim)
                   if cfg.pe_multiplier(k, n) == "dsp" and (cfg.dsp_products == 2 or one_block)]
        pairs = [dsp_pes[i:i + 2] for i in range(0, len(dsp_pes), 2)] \
            if cfg.dsp_products == 2 else [[pe] for pe in dsp_pes]
        held = {pe for pair in pairs for pe in pair
                if cfg.dsp_products == 1 or self.broadcast and len({k for k, _ in pair}) == 1}
        pes = []
        psum_shape = None
        for k in range(dim):
            out_shape = sum_shape(cfg.act_shape, cfg.weight_shape, k + 1, cfg.acc_width)
            row = []
            for n in range(dim):
                multiplier = "external" if (k, n) in dsp_pes else cfg.pe_multiplier(k, n)
                pe = ProcessingElement(
                    act_shape=cfg.act_shape, weight_shape=cfg.weight_shape,
                    psum_in_shape=psum_shape or out_shape, psum_out_shape=out_shape,
                    multiplier=multiplier, product_stages=cfg.product_stages, top=k == 0,
                    forward=not self.broadcast, external_weight=(k, n) in held,
                    reset_less=data_reset_less)
                m.submodules[f"pe_{k}_{n}"] = pe
                chained = n > 0 and not self.broadcast
                m.d.comb += [
                    pe.a_in.eq(row[n - 1].a_out if chained else row_act[k]),
                    pe.swap_in.eq(row[n - 1].swap_out if chained else row_swap[k]),
                    pe.w_in.eq(col_weight[n]),
                    pe.w_en.eq(col_select[n][k]),
                    pe.psum_in.eq(0 if k == 0 else pes[k - 1][n].psum_out),
                ]
                row.append(pe)
            pes.append(row)
            psum_shape = out_shape

        floorplan = dsp_floorplan(platform, cfg)
        for i, pair in enumerate(pairs):
            if cfg.dsp_products == 1:
                pe = pes[pair[0][0]][pair[0][1]]
                dsp = m.submodules[f"dsp_{i}"] = ECP5Multiplier(
                    cfg.act_shape, cfg.weight_shape,
                    site=floorplan.pe(*pair[0]) if floorplan else None)
                m.d.comb += [dsp.a.eq(pe.mul_a), dsp.b.eq(pe.mul_b), pe.mul_p.eq(dsp.p),
                             dsp.load_b.eq(pe.mul_load)]
                continue
            hold = pair[0] in held
            dsp = m.submodules[f"dsp_{i}"] = ICE40DualMultiplier(latency=1, hold_b=hold)
            ports = [(dsp.a0, dsp.b0, dsp.p0), (dsp.a1, dsp.b1, dsp.p1)][:len(pair)]
            for (k, n), (a, b, p) in zip(pair, ports, strict=True):
                pe = pes[k][n]
                m.d.comb += [a.eq(pe.mul_a), b.eq(pe.mul_b), pe.mul_p.eq(p)]
            if hold:  # the pair shares its row's swap
                m.d.comb += dsp.load_b.eq(pes[pair[0][0]][pair[0][1]].mul_load)

        # --- De-skew the bottom row; the tag travels beside the array. ---
        bottom = [_delayed(m, pes[dim - 1][n].psum_out, hop * (dim - 1 - n), f"sum_c{n}",
                           data_reset_less) for n in range(dim)]
        if self.tags:
            m.d.comb += result.tag.eq(_delayed(m, self.acts.payload.tag, result_latency,
                                               "tag"))
        for n in range(dim):
            m.d.comb += result.row[n].eq(bottom[n])
        return m
