# sepipe: one target per experiment; `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SEPIPE := $(BIN)/sepipe
STAMP := $(VENV)/.installed
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONUNBUFFERED := 1

# enhancement experiments only (a YAML with `task:` is run by its own command, e.g. exp-quality-predictor)
EXPERIMENTS := $(basename $(notdir $(shell grep -L '^task:' experiments/*.yaml)))
RUNS = $(wildcard runs/*/report)

.PHONY: help install demo test test-fast exp-% exp-search exp-sparsity report check-budgets bench-mlia clean

help: ## List the targets
	@grep -hE '^[a-zA-Z%_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'
	@echo "  experiments:"; for f in experiments/*.yaml; do n=$$(basename $$f .yaml); echo "    make exp-$$n"; done

# Every extra, at the versions tested together: exact pins in pyproject.toml, the rest in constraints.txt.
# (A user's CI needs only `pip install sepipe` for compile and budget check; see sepipe/extras.py.)
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[all,test]'
	touch $@

install: $(STAMP) ## Create .venv and install the pinned toolchain (every extra, constraints.txt)

demo: $(STAMP) ## Build the small dataset, train, convert, evaluate, print the table (~15 min)
	$(SEPIPE) run experiments/demo.yaml

# One pytest worker per core (pytest-xdist); a module's tests stay on one worker, so its fixtures are built once.
TEST_WORKERS ?= auto
test: $(STAMP) firmware-toolchain browser ## Run the test suite (tiny models, real tools, C stub on host and Cortex-M55, the report page in headless Chromium)
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

test-fast: $(STAMP) firmware-toolchain ## The edit loop: tests that neither train nor convert (pytest -m "not slow")
	$(BIN)/pytest -q -m "not slow"

exp-%: $(STAMP) ## Run experiments/<name>.yaml end to end (e.g. make exp-baseline)
	$(SEPIPE) run experiments/$*.yaml

exp-mixed-precision: $(STAMP) ## Mixed precision (issue 13): experiments/mixed_precision.yaml (reuses the demo's training if copied)
	$(SEPIPE) run experiments/mixed_precision.yaml

exp-search: $(STAMP) ## Per-layer compression search (issue 14): NSGA-II on the demo GRU (converts demo_s0 first if needed)
	$(SEPIPE) convert experiments/search_demo.yaml
	$(SEPIPE) search experiments/search_demo.yaml

exp-search-lstm: $(STAMP) ## The same search on the demo-size LSTM with the 16x8 precision gene (issue 14; trains mixed_precision_lstm's model first if needed)
	$(SEPIPE) convert experiments/search_lstm.yaml
	$(SEPIPE) search experiments/search_lstm.yaml

exp-early-exit: $(STAMP) ## Early-exit nsNet2 (issue 16): joint exits, then each exit's size trained separately (hours)
	$(SEPIPE) run experiments/early_exit.yaml
	for n in 1 2 3 4; do $(SEPIPE) run experiments/early_exit_separate$$n.yaml || exit 1; done

# The predictor's clips are enhanced by the demo GRU (search_demo.yaml: run demo_s0) and a demo-size LSTM in int8 and 16x8
# (predictor_lstm.yaml: run mplstm_s1): trained and converted first, each skipped when current.
PREDICTOR_ENHANCERS := search_demo predictor_lstm
exp-quality-predictor: $(STAMP) ## Tiny speech-quality predictor (issue 17): its enhancers, labels, float / int8 QAT / binary, Vela, TFLM (~50 min)
	for e in $(PREDICTOR_ENHANCERS); do for step in "data build" train convert; do \
	  $(SEPIPE) -q $$step experiments/$$e.yaml || exit 1; done; done
	$(SEPIPE) predictor run experiments/quality_predictor.yaml

exp-sparsity: $(STAMP) ## The sparsity sweep on both families: sparsity_gru.yaml, then sparsity_lstm.yaml
	$(SEPIPE) run experiments/sparsity_gru.yaml
	$(SEPIPE) run experiments/sparsity_lstm.yaml

report: $(STAMP) ## Rebuild the report (CSV, Markdown, HTML) of every experiment that has run
	@for e in $(EXPERIMENTS); do if [ -f runs/$$e/manifest.json ]; then $(SEPIPE) -q report experiments/$$e.yaml || exit 1; fi; done

check-budgets: $(STAMP) ## Check every run against vela_configs/budgets.yaml (non-zero exit on a violation)
	$(SEPIPE) -q budget check $(or $(RUNS:/report=),$(error no runs with a report yet: run make demo first))

EXP ?= demo
VARIANT ?= ptq
TARGET ?= ethos-u55-128
.PHONY: bundle
bundle: $(STAMP) ## Firmware hand-off bundle of a compiled run (EXP=demo VARIANT=ptq TARGET=ethos-u55-128), then verify it
	$(SEPIPE) -q bundle runs/$(EXP) --variant $(VARIANT) --target $(TARGET)
	$(SEPIPE) -q verify-bundle runs/$(EXP)/bundles/$(EXP)_$(VARIANT)_$(TARGET).zip

# Arm cross compiler (Debian's packages) for firmware_stub/; installed only when missing.
# The packages are listed in firmware_stub/Makefile (its `toolchain` target), so the stub installs what it
# needs on its own too. C++ for the TFLite Micro wrapper also needs libstdc++-arm-none-eabi-newlib (not installed here).
APT_SUDO = $(if $(filter 0,$(shell id -u)),,sudo)
.PHONY: firmware-toolchain firmware
firmware-toolchain: ## Install Debian's cc, gcc-arm-none-eabi, newlib and qemu-system-arm (apt-get) when missing
	@$(MAKE) --no-print-directory -C firmware_stub toolchain

firmware: $(STAMP) firmware-toolchain ## firmware_stub: C vs Python/TFLM host tests, the frame loop on QEMU's Cortex-M55, M55 size report
	$(BIN)/pytest -q -s tests/test_firmware_stub.py tests/test_firmware_qemu.py tests/test_firmware_multi.py
	$(MAKE) --no-print-directory -C firmware_stub m55

# Headless Chromium (Debian's packages) for the report page's browser check (tests/test_report_browser.py,
# benchmarks/report_page.py); installed only when missing. Playwright's browser download is not needed.
BROWSER_APT := chromium chromium-driver
.PHONY: browser report-page
browser: ## Install Debian's chromium and chromium-driver (apt-get) when chromium or chromedriver is missing
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; else \
	  echo "browser: installing $(BROWSER_APT) with apt-get"; \
	  $(APT_SUDO) apt-get install -y --no-install-recommends $(BROWSER_APT) || \
	  { $(APT_SUDO) apt-get update && $(APT_SUDO) apt-get install -y --no-install-recommends $(BROWSER_APT); }; fi

report-page: $(STAMP) browser ## A run's HTML page with its players, checked in headless Chromium; prints its size (EXP=demo)
	$(BIN)/python benchmarks/report_page.py runs/$(EXP)

bench-mlia: $(STAMP) ## Compare our Vela figures and times with Arm MLIA's (own venv in .cache/mlia-venv; not CI)
	$(BIN)/python benchmarks/mlia_compare.py --tiny $(if $(MLIA_PYTHON),--python $(MLIA_PYTHON)) $(BENCH_MODELS)

clean: ## Remove runs (keeps the dataset cache and .venv)
	rm -rf runs
