# make run  : set up .venv (idempotent), run the whole pipeline on config.yaml and compare the run
#             with the committed reference (prints "N of M numbers within tolerance; ...")
# make compare [A=reference/default B=results/default COMPARE_ARGS=--strict]: compare two finished runs
# make reference: replace reference/default with the finished run's tables and claims (on purpose)
# make test : set up .venv and run the test suite (without the SLURM integration test)
# make test-slurm: start a one-node SLURM cluster (root; slurm-wlm + munge) and run tests/test_slurm.py
# make bench: run every benchmark and write benchmarks/results.md
# make gpu-check [DEVICE=cpu GPU_CHECK_ARGS=...]: the GPU readiness check, writes benchmarks/gpu.md
# make mutation [MUTATION_MODULES='stats pgd']: mutmut over the science modules against their unit
#   tests (slow, CPU-heavy; not part of make test); writes benchmarks/mutation/*.json and report.md
# make wheels [WHEELS_PYTHON=3.12]: the installed requirements (without torch) as wheels in wheels/ for an
#   offline GPU box whose Python is WHEELS_PYTHON (default: this one's)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all
SNAKEMAKE_ARGS ?=

.PHONY: run test test-slurm bench gpu-check wheels lint clean compare reference mutation

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# the run's folder (its tables/ and claims.csv: results/<run>/, config key run; config.yaml alone
# is the run `default`) and the committed reference it is compared with
RUN_DIR ?= results/default
REFERENCE ?= reference/default

# ends by comparing with the reference, not strictly: another CPU gives other numbers (see
# docs/reproducibility.md); the run's summary is results/default/summary.md (the README is not touched)
run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --rerun-incomplete $(SNAKEMAKE_ARGS)
	$(BIN)/python -m advfeatures compare $(REFERENCE) $(RUN_DIR)

A ?= $(REFERENCE)
B ?= $(RUN_DIR)
COMPARE_ARGS ?=
compare: $(STAMP)
	$(BIN)/python -m advfeatures compare $(A) $(B) $(COMPARE_ARGS)

reference: $(STAMP)
	$(BIN)/python -m advfeatures reference $(RUN_DIR) $(REFERENCE)

# pytest-xdist: one worker per core; the tests that use the tiny run stay on one worker (conftest)
TEST_WORKERS ?= auto
test: lint
	$(BIN)/python -m pytest -q -m "not slurm" -n $(TEST_WORKERS) --dist loadgroup

test-slurm: $(STAMP)
	$(BIN)/python -m pytest -q -m slurm -s tests/test_slurm.py

DEVICE ?= cuda
GPU_CHECK_ARGS ?=
gpu-check:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) benchmarks/gpu_check.py --device $(DEVICE) $(GPU_CHECK_ARGS)

# WHEELS_PYTHON: the GPU box's Python version (binary wheels for it, manylinux x86-64); a package
# published only as source is built here as a wheel
WHEELS_PYTHON ?= $(shell $(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
wheels: $(STAMP)
	mkdir -p wheels
	$(BIN)/pip freeze --exclude-editable | grep -v -E '^(torch|torchvision|triton|nvidia-)' > wheels/requirements.txt
	for r in $$(cat wheels/requirements.txt); do \
	  $(BIN)/pip download --quiet --no-deps --only-binary=:all: --python-version $(WHEELS_PYTHON) --implementation cp \
	    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	    --dest wheels "$$r" || $(BIN)/pip wheel --quiet --no-deps --wheel-dir wheels "$$r" || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check advfeatures workflow_scripts tests benchmarks
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint

MUTATION_MODULES ?=
mutation: $(STAMP)
	$(BIN)/pip install --quiet -e '.[mutation]'
	nice -n 19 $(BIN)/python benchmarks/mutation/run_mutation.py $(MUTATION_MODULES)

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf results/* results/.resume .snakemake
