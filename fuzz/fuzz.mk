# Fuzzing (docs/fuzzing.md): cargo-fuzz targets for the request decoders and the proxy's and the
# predictor's parsers. The Makefile includes this file; it also runs alone:
#   make -f fuzz/fuzz.mk fuzz FUZZ_SECONDS=600
# Needs the nightly toolchain (sanitizers) and cargo-fuzz; `fuzz-short` installs cargo-fuzz where
# nightly is present and skips, saying why, where it is not.

FUZZ_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
FUZZ_TARGETS := json ndjson arrow_ipc proxy_extract oip_v2
# Seconds per target: `fuzz` for a real search, `fuzz-short` for `make test`.
FUZZ_SECONDS ?= 60
FUZZ_SHORT_SECONDS ?= 20
FUZZ_CARGO ?= cargo +nightly
# Python with pyarrow, for `fuzz-seeds` only (the test venv has it).
FUZZ_PYTHON ?= .venv/bin/python
# An input that makes a target allocate past these limits, or run past the timeout (seconds), is a
# finding like a panic: decoders must stay bounded on any body.
FUZZ_LIMITS := -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10

.PHONY: fuzz fuzz-short fuzz-build fuzz-regressions fuzz-seeds

# Runs every target for $(1) seconds and fails at the end if any found something. Inputs libFuzzer
# finds go to $(FUZZ_DIR)/target/corpus/<target> (kept between runs, never committed); the seeds
# and the regression cases are read, never written. Crashes land in $(FUZZ_DIR)/artifacts/<target>.
define fuzz_all
	failed=""; \
	for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_DIR)/target/corpus/$$t; \
		dirs="$(FUZZ_DIR)/target/corpus/$$t $(FUZZ_DIR)/corpus/$$t"; \
		[ -d $(FUZZ_DIR)/regressions/$$t ] && dirs="$$dirs $(FUZZ_DIR)/regressions/$$t"; \
		case $$t in arrow_ipc) dict="" ;; *) dict="-dict=$(FUZZ_DIR)/dict/json.dict" ;; esac; \
		echo "fuzz: $$t for $(1)s"; \
		$(FUZZ_CARGO) fuzz run --fuzz-dir $(FUZZ_DIR) $$t $$dirs -- \
			-max_total_time=$(1) $(FUZZ_LIMITS) $$dict -print_final_stats=1 || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: found crashes in:$$failed (inputs in $(FUZZ_DIR)/artifacts/)"; exit 1; fi
endef

fuzz: fuzz-build
	@$(call fuzz_all,$(FUZZ_SECONDS))

fuzz-build:
	$(FUZZ_CARGO) fuzz build --fuzz-dir $(FUZZ_DIR)

# `make test` calls this: a short run of each target where the nightly toolchain is installed.
fuzz-short:
	@if ! command -v rustup >/dev/null || ! rustup toolchain list | grep -q '^nightly'; then \
		echo "fuzz-short: skipped: no nightly toolchain (rustup toolchain install nightly), which cargo-fuzz's sanitizers need"; \
		exit 0; \
	fi; \
	if ! $(FUZZ_CARGO) fuzz --version >/dev/null 2>&1; then \
		echo "fuzz-short: installing cargo-fuzz"; \
		if ! cargo install cargo-fuzz --locked; then \
			echo "fuzz-short: skipped: cargo-fuzz is missing and could not be installed"; \
			exit 0; \
		fi; \
	fi; \
	$(FUZZ_CARGO) fuzz build --fuzz-dir $(FUZZ_DIR) || exit 1; \
	$(call fuzz_all,$(FUZZ_SHORT_SECONDS))

# Each regression case, once: passes once the bug it was found by is fixed.
fuzz-regressions: fuzz-build
	@failed=""; \
	for t in $(FUZZ_TARGETS); do \
		cases=$$(find $(FUZZ_DIR)/regressions/$$t -type f 2>/dev/null | sort); \
		[ -n "$$cases" ] || continue; \
		for c in $$cases; do \
			$(FUZZ_CARGO) fuzz run --fuzz-dir $(FUZZ_DIR) $$t $$c -- $(FUZZ_LIMITS) \
				&& echo "fuzz: passes: $$c" || failed="$$failed $$c"; \
		done; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: still crash:$$failed"; exit 1; fi

# Rewrites the seed corpora from $(FUZZ_DIR)/seeds.py.
fuzz-seeds:
	$(FUZZ_PYTHON) $(FUZZ_DIR)/seeds.py
