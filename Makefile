# dmd3c — every target bootstraps the virtual environment (.venv) on first use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DMD3C := $(VENV)/bin/dmd3c
STAMP := $(VENV)/.dmd3c-installed

# generate-data (OUT = the store it writes; RAY_ADDRESS is read from the environment)
CORPUS ?= builtin
TEACHER ?= depth-anything-v2-small
SENSOR ?= hdl64e
GENERATE_ARGS ?=
# pretrain reads STORE and writes the run directory OUT; finetune writes FINETUNE_OUT with
# RECIPE = dmd3c (the released DMD3C code) | dmd3c++ | dmd3c-ours (configs/finetune-RECIPE.yaml)
STORE ?= data/store.zarr
RECIPE ?= dmd3c
KITTI ?= data/kitti
TEACHER_MAPS ?= data/kitti_teacher.zarr
INIT ?= runs/pretrain/last.pt
FINETUNE_OUT ?= runs/finetune
TRAIN_ARGS ?=
# test
PYTEST_ARGS ?=

.PHONY: help system-libs setup generate-data pretrain finetune inspect test test-isolated bench lint clean

help: ## Show the targets and their variables
	@echo "dmd3c make targets (the first one run creates $(VENV)):"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-15s %s\n", $$1, $$2}'
	@echo "variables: generate-data: CORPUS=$(CORPUS) OUT=data/store.zarr TEACHER=$(TEACHER) SENSOR=$(SENSOR) RAY_ADDRESS=..."
	@echo "           pretrain: STORE=$(STORE) OUT=runs/pretrain TRAIN_ARGS=..."
	@echo "           finetune: RECIPE=$(RECIPE) (dmd3c | dmd3c++ | dmd3c-ours) KITTI=$(KITTI) TEACHER_MAPS=$(TEACHER_MAPS)"
	@echo "                     INIT=$(INIT) FINETUNE_OUT=$(FINETUNE_OUT) TRAIN_ARGS=..."

system-libs: ## Check the system libraries open3d loads; install them as root (apt-get)
	@.ci/system-libs

# Every target that needs .venv checks the system libraries first (order-only: a check,
# not a reason to reinstall); without root it stops at once with the command to run.
$(STAMP): pyproject.toml | system-libs
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch, pinned: an unpinned torch may pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP) ## System libraries, then .venv with dmd3c and all its dependencies

generate-data: OUT ?= data/store.zarr
generate-data: $(STAMP) ## Generate the sample store OUT from CORPUS with TEACHER and SENSOR (Ray)
	$(DMD3C) generate --corpus $(CORPUS) --store $(OUT) --teacher $(TEACHER) --sensor $(SENSOR) $(GENERATE_ARGS)
	$(DMD3C) inspect $(OUT)

pretrain: OUT ?= runs/pretrain
pretrain: $(STAMP) ## Stage-1 distillation pre-training of BP-Net on STORE into OUT
	$(DMD3C) pretrain --store $(STORE) --out $(OUT) $(TRAIN_ARGS)

finetune: $(STAMP) ## Stage-2 fine-tuning on KITTI with RECIPE (KITTI, TEACHER_MAPS, INIT) into FINETUNE_OUT
	$(DMD3C) finetune --recipe $(RECIPE) --kitti $(KITTI) --teacher-maps $(TEACHER_MAPS) --init $(INIT) --out $(FINETUNE_OUT) $(TRAIN_ARGS)

inspect: $(STAMP) ## Validate and summarise STORE
	$(DMD3C) inspect $(STORE)

test: $(STAMP) ## Run the test suite (offline, CPU)
	@status=0; $(PY) -m pytest $(PYTEST_ARGS) || status=$$?; \
	echo $$status > $(VENV)/.pytest-exit-status; exit $$status

test-isolated: $(STAMP) ## Run each test file alone, in random order (finds order dependence)
	@start=$$(date +%s); failed=(); \
	for file in $$(find tests -name 'test_*.py' | sort); do \
		echo "== $$file"; $(PY) -m pytest -q -p randomly $(PYTEST_ARGS) "$$file" || failed+=("$$file"); \
	done; \
	echo "test-isolated: $$(( $$(date +%s) - start )) s; $${#failed[@]} file(s) failed $${failed[*]}"; \
	[ $${#failed[@]} -eq 0 ]

bench: $(STAMP) ## Run the benchmarks (prints measured ratios)
	@set -e; for script in benchmarks/bench_*.py; do echo "== $$script"; $(PY) $$script; done

lint: $(STAMP) ## ruff check and the mypy type checker (strict on data_schemas)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean: ## Remove caches (keeps .venv and data)
	rm -rf .pytest_cache .ruff_cache build *.egg-info
