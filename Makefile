# Tessera: every target bootstraps the pinned toolchain into .venv on first use.
PYTHON_SYS ?= python3
VENV       := .venv
PY         := $(VENV)/bin/python
TESSERA    := $(VENV)/bin/tessera
STAMP      := $(VENV)/.installed
BOARD      ?= icebreaker
CONFIG     ?=
SEED       ?= 1
JOBS       ?= 2

.PHONY: all test test-quick synth verilog tinytapeout area lint bench clean distclean

all: test

$(STAMP): pyproject.toml
	$(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

## make test: the whole suite (Amaranth simulator, cocotb + Verilator, synthesis smoke).
test: $(STAMP)
	$(PY) -m pytest -n $(JOBS) --dist worksteal --durations=25 tests

## make test-quick: everything not marked slow.
test-quick: $(STAMP)
	$(PY) -m pytest -n $(JOBS) -m "not slow" tests

## make synth [BOARD=icebreaker|orangecrab-25f|orangecrab-25f-uart|ulx3s-85f] [CONFIG=tiny] [SEED=1] [TOP=system]:
## bitstream and report under build/synth (TOP=selftest: the array alone).
synth: $(STAMP)
	$(TESSERA) synth --board $(BOARD) $(if $(CONFIG),--config $(CONFIG)) --seed $(SEED) \
		$(if $(TOP),--top $(TOP))

## make verilog [CONFIG=asic]: the foundry handoff bundle under build/verilog/<config>.
verilog: $(STAMP)
	$(TESSERA) verilog --config $(or $(CONFIG),asic) -o build/verilog/$(or $(CONFIG),asic)

## make tinytapeout: the Tiny Tapeout project of the micro preset under build/tinytapeout.
tinytapeout: $(STAMP)
	$(TESSERA) tinytapeout -o build/tinytapeout

## make area [CONFIG=asic]: sky130_fd_sc_hd area estimate of the bundle, per block.
area: $(STAMP)
	$(PY) -m sw.asic_area --config $(or $(CONFIG),asic)

## make lint: Verilator --lint-only -Wall and yosys check -assert on every preset's array and
## handoff bundle (as shipped).
lint: $(STAMP)
	$(PY) -m sw.lint

## make bench: throughput, simulation speed and full-size FPGA builds; results in build/bench/.
bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf build sim_build .pytest_cache results.xml

distclean: clean
	rm -rf $(VENV)
