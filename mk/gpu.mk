# `make gpu-wheels`: the wheels the GPU check (benchmarks/gpu/run_gpu_check.py) installs
# on the lent GPU machine, which reaches no package registry. Its image has Python 3.12
# with torch 2.11, transformers 5.17, accelerate, safetensors, tokenizers, pyarrow,
# pyyaml, jinja2, tqdm, numpy, pandas, huggingface_hub 1.33, httpx, xxhash, psutil,
# msgpack, ninja, einops, py-cpuinfo; it lacks PyAV, TRL, DeepSpeed, datasets and
# pydantic. So: those, and transformers 5.23 (the project's own floor: under the image's
# 5.17 the processor's assistant mask of a video conversation comes back empty, so SFT
# trains on nothing), for CPython 3.12 on manylinux x86-64, each pinned, without
# dependencies (pip would otherwise fetch torch), plus the few dependencies the image
# lacks or may hold too old a version of. Versions: TRL 1.16 (transformers >= 4.56.2),
# datasets 4.8 (pyarrow >= 21, huggingface_hub < 2; 5.x wants pyarrow >= 24), DeepSpeed
# 0.19.8 (torch >= 2.0), which ships only sources: built here into a pure-Python wheel
# with DS_BUILD_OPS=0 (its CUDA ops build on first use there, with the image's nvcc).
# setuptools (>= 77, for pyproject's license string) builds the project's editable install.
# The project's `openai` dependency is left out: no part of the check calls a server.
# Everything lands in .whl/ (git-ignored), which the run tool carries (64 MiB at most,
# with the working tree): the rule prints the total.
GPU_WHL := .whl
GPU_PYTHON_VERSION := 3.12
GPU_PLATFORMS := --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
	--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64
GPU_WHEELS := av==19.0.2 transformers==5.23.0 trl==1.16.0 datasets==4.8.5 dill==0.4.0 multiprocess==0.70.18 \
	fsspec==2026.2.0 pydantic==2.14.3 pydantic-core==2.50.4 annotated-types==0.8.0 \
	typing-inspection==0.4.5 typing-extensions==4.16.0 hjson==3.1.0 setuptools==84.2.1
GPU_DEEPSPEED := deepspeed==0.19.8

.PHONY: gpu-wheels

gpu-wheels:
	rm -rf $(GPU_WHL) && mkdir -p $(GPU_WHL)
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --implementation cp \
		--python-version $(GPU_PYTHON_VERSION) $(GPU_PLATFORMS) -d $(GPU_WHL) $(GPU_WHEELS)
	DS_BUILD_OPS=0 $(PYTHON) -m pip wheel --quiet --no-deps --no-binary deepspeed \
		-w $(GPU_WHL) $(GPU_DEEPSPEED)
	@$(PYTHON) -c "import pathlib, sys; w = sorted(pathlib.Path('$(GPU_WHL)').glob('*.whl')); \
		total = sum(p.stat().st_size for p in w); \
		print(f'{len(w)} wheels in $(GPU_WHL)/: {total / 2**20:.1f} MiB (limit 64 MiB with the working tree)'); \
		sys.exit(total > 64 * 2**20)"
	@git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | \
		awk '{printf "working tree that travels with them: %.1f MiB\n", $$1 / 1048576}'
