# Two commands: `make demo` (train tiny models on the bundled music, write audio and pictures)
# and `make test` (unit tests + every notebook through nbval). Both build .venv first.
# `make test-quality` trains real models to their quality bars over several seeds (slow; CI runs it too).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel of torch; override on a CUDA machine, e.g. `make TORCH_SPEC=torch demo`.
TORCH_SPEC ?= torch==2.13.0
# Keras 3 on TensorFlow: `tf-cpu` is the small Linux CPU build; use `tf` on macOS or CUDA.
TF_EXTRA ?= tf-cpu
OUT ?= outputs/demo
STAMP := $(VENV)/.installed

.PHONY: demo test test-quality results curves setup lab bench clean

demo: $(STAMP)
	$(BIN)/musiclib demo --out $(OUT)

# Two pytest workers, one file each at a time, one thread each: the notebooks and tests are mostly single-threaded.
test: $(STAMP)
	MUSICLIB_FAST=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests notebooks --ignore=tests/quality --nbval-lax --nbval-current-env --nbval-cell-timeout=600 -q -n 2 --dist loadfile

test-quality: $(STAMP)
	MUSICLIB_FAST=1 $(BIN)/python -m pytest tests/quality -q -rP --durations=0

# docs/results.md (+ .json) and the README's results table: every model, three seeds, fast sizes (never typed by hand).
# Resumable: its runs and scores stay in outputs/compare.
results: $(STAMP)
	$(BIN)/musiclib compare --fast --seeds 3 --jobs 2 --out docs/results.md --readme README.md

# docs/curves.md (+ .png, .json): each model's loss and scores against steps and minutes on this machine: the fast
# recipes, trained on to three times their steps.
curves: $(STAMP)
	MUSICLIB_FAST=1 OMP_NUM_THREADS=2 $(BIN)/musiclib curves --points 6 --until 3 --out docs/curves.md

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --no-compile "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q --no-compile -e ".[$(TF_EXTRA),dev]"
	@# pip compiles the bytecode one file at a time; this uses every core (a few third-party files that do not compile are skipped).
	-$(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null 2>&1
	touch $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	$(BIN)/python benchmarks/dsp.py
	$(BIN)/python benchmarks/sequence_generation.py
	$(BIN)/python benchmarks/sequence_generation.py --seed-size
	$(BIN)/python benchmarks/token_cache.py
	$(BIN)/python benchmarks/vocoder_speed.py
	$(BIN)/python benchmarks/channels_last_step.py
	$(BIN)/python benchmarks/cli_to_audio.py
	$(BIN)/python benchmarks/evaluate_memory.py
	$(BIN)/python benchmarks/stream_memory.py
	$(BIN)/python benchmarks/ddp_scaling.py --no-write
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python benchmarks/train_budget.py

clean:
	rm -rf $(VENV) outputs
