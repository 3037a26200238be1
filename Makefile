# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_RUN ?= runs/demo
DEMO_STEPS ?= 400

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: the CPU build lies on this machine's disk; an unpinned torch would pull a CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[train,dev]"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	@echo "== training a small SVG-LP on 1-digit Stochastic Moving MNIST (offline digits, CPU) =="
	$(BIN)/svg train --preset smmnist-small --num-digits 1 --steps $(DEMO_STEPS) --sample-every 200 \
		--checkpoint-every 200 --out $(DEMO_RUN) $(if $(wildcard $(DEMO_RUN)/checkpoint.safetensors),--resume,)
	@echo "== samples: $(DEMO_RUN)/samples/latest.gif =="

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks -q --benchmark-only

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
