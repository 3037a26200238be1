# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_RUN ?= runs/demo
DEMO_STEPS ?= 600

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: the CPU build lies on this machine's disk; an unpinned torch would pull a CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	# [cpu]: the onnxruntime CPU build (a GPU machine would take [gpu] instead: never both).
	$(BIN)/python -m pip install -q -e ".[train,cpu,sim,dev]"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	@echo "== 1/5 futures at once: the pretrained SVG-LP shipped in the package (torch-free runtime) =="
	$(BIN)/svg data smmnist --num-digits 1 --count 32 --length 25 --seed 42 --out $(DEMO_RUN)/test.npz
	$(BIN)/svg rollout pretrained:smmnist-1digit --context $(DEMO_RUN)/test.npz --cond 5 --samples 8 \
		--horizon 20 --seed 0 --show 4 --out $(DEMO_RUN)/pretrained_rollout.gif
	@echo "== 2/5 train a small SVG-LP on 1-digit Stochastic Moving MNIST (offline digits, CPU, a few minutes) =="
	$(BIN)/svg train --preset smmnist-small --num-digits 1 --steps $(DEMO_STEPS) --sample-every $(DEMO_STEPS) \
		--checkpoint-every 200 --out $(DEMO_RUN)/train $(if $(wildcard $(DEMO_RUN)/train/checkpoint.safetensors),--resume,)
	@echo "== 3/5 export it to ONNX (verified against PyTorch) =="
	$(BIN)/svg export $(DEMO_RUN)/train --out $(DEMO_RUN)/bundle --force
	@echo "== 4/5 roll out 8 futures of held-out test videos with the torch-free runtime =="
	$(BIN)/svg rollout $(DEMO_RUN)/bundle --context $(DEMO_RUN)/test.npz --cond 5 --samples 8 --horizon 20 \
		--seed 0 --show 4 --out $(DEMO_RUN)/rollout.gif
	@echo "== 5/5 evaluate: best of 20 samples against the copy-last-frame and all-black baselines =="
	$(BIN)/svg eval $(DEMO_RUN)/train --data $(DEMO_RUN)/test.npz --samples 20 --out $(DEMO_RUN)/eval
	@echo "== done: $(DEMO_RUN)/pretrained_rollout.gif (pretrained), $(DEMO_RUN)/rollout.gif and" \
		"$(DEMO_RUN)/train/samples/latest.gif (trained just now), $(DEMO_RUN)/eval/curves.png =="

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks -q --benchmark-only

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
