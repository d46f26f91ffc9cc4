# The training environment `.venv-train`, apart from `.venv` as generation (vLLM) and
# training are on clusters. PyPI's CUDA builds of torch and torchvision: they also run on
# a CPU-only machine (PyPI has no CPU build of torchvision, which transformers' video
# processors need; `--isolated` keeps pip off any local CPU-only torch wheel). DeepSpeed
# installs without compiling its ops (they build on first use, on a GPU machine).
# Pinned: the versions tested together. Stamped: a second `make` does nothing until
# pyproject.toml or this file changes. Included by the Makefile.
TRAIN_VENV := .venv-train
TRAIN_BIN := $(TRAIN_VENV)/bin
TRAIN_STAMP := $(TRAIN_VENV)/.installed
TRAIN_PINS := torch==2.13.0 torchvision==0.28.0 transformers==5.23.0 trl==1.16.0 \
	accelerate==1.15.0 deepspeed==0.19.8
TINY_VLM := build/models/tiny-qwen2_5_vl

.PHONY: train-env train-demo

train-env: $(TRAIN_STAMP)

$(TRAIN_STAMP): pyproject.toml mk/train.mk
	test -x $(TRAIN_BIN)/python || $(PYTHON) -m venv $(TRAIN_VENV)
	DS_BUILD_OPS=0 $(TRAIN_BIN)/python -m pip --isolated install --quiet \
		--disable-pip-version-check $(TRAIN_PINS) -e '.[train,eval]'
	touch $@

# The tiny random Qwen2.5-VL ($(TINY_VLM)) is built by the Makefile's rule (in .venv-vllm,
# which the demo needs anyway).

# A few real SFT steps on the CPU: needs the quickstart build with its mix-quickstart
# config (`make demo`, then the mixing stage).
train-demo: $(TINY_VLM)/tiny_vlm.json
	$(TRAIN_BIN)/python -m vlm_autodrive.cli train recipes/train/tiny_cpu.yaml --resume
