"""The `generate:` section of a build recipe: models, backends and the model-made configs.

Every field can be overridden on the command line (`--set generate.models.text.backend=vllm`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, PositiveInt, field_validator, model_validator

from vlm_autodrive.builders.core.fingerprint import FILE_INPUT, NOT_AN_INPUT
from vlm_autodrive.builders.core.private import shown_model_name
from vlm_autodrive.builders.core.strict import Strict


def _http_url(value: str) -> str:
    """`value` when it is an http(s) URL with a host; ValueError otherwise. Checked when
    the recipe loads, with the key (`base_urls.0`), not after ingest and chunking when
    the first request fails on it."""
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0  # reading .port checks it
    except ValueError:
        parts, port_ok = None, False
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ValueError(f"not an http(s) URL: {value!r} (one per replica, e.g. http://h:8000/v1)")
    return value


HttpUrlText = Annotated[str, AfterValidator(_http_url)]


class RayModelSettings(Strict):
    """backend ray: how `ray.data.llm` runs the model's requests."""

    replicas: int = Field(
        1,
        ge=1,
        description="HTTP actors (base_urls set) or vLLM engines in the cluster (none set)",
    )
    batch_size: int = Field(
        16, ge=1, description="requests per batch; an HTTP actor sends a batch's at once"
    )
    accelerator_type: str | None = Field(None, description="vLLM in the cluster: e.g. H100")


class Throughput(Strict):
    """The throughput of one replica of a model, measured on a real run of this recipe's
    requests; the dry run turns it into GPU-hours. Give exactly one rate."""

    requests_per_s: float | None = Field(None, gt=0, description="requests a second")
    output_tokens_per_s: float | None = Field(None, gt=0, description="output tokens a second")
    gpus: int | None = Field(
        None, ge=1, description="GPUs of one replica (default: tensor_parallel_size)"
    )

    @model_validator(mode="after")
    def _one_rate(self) -> Throughput:
        if (self.requests_per_s is None) == (self.output_tokens_per_s is None):
            raise ValueError("give one of requests_per_s and output_tokens_per_s")
        return self


class ModelConfig(Strict):
    """One model and the backend that serves it."""

    # What a model writes is decided by its weights (`model`, `revision`: see
    # `identity`) and the engine settings that are inputs; the rest says how it is
    # reached and run (marked NOT_AN_INPUT: changing them re-sends nothing).
    backend: Literal["openai", "vllm", "ray"] = Field("openai", json_schema_extra=NOT_AN_INPUT)
    model: str = Field(
        description="model id (Hub id or local folder)", json_schema_extra=NOT_AN_INPUT
    )
    revision: str | None = Field(None, description="pinned revision; part of the cache key")
    served_model_name: str | None = Field(
        None, description="name the server knows it by", json_schema_extra=NOT_AN_INPUT
    )
    base_urls: list[HttpUrlText] = Field(
        default_factory=list,
        description="openai: one URL per replica, e.g. http://h:8000/v1",
        json_schema_extra=NOT_AN_INPUT,
    )
    local_server: bool = Field(
        False,
        description="openai: start `vllm` on 127.0.0.1 for `model` during the build",
        json_schema_extra=NOT_AN_INPUT,
    )
    server_python: str | None = Field(
        None,
        description="local_server: the python of an environment with vLLM (default: the "
        "project's .venv-vllm/bin/python, found from any working directory)",
        json_schema_extra=NOT_AN_INPUT,
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="variable holding the API key", json_schema_extra=NOT_AN_INPUT
    )
    max_concurrency: int = Field(64, ge=1, json_schema_extra=NOT_AN_INPUT)
    timeout: float = Field(
        600.0, gt=0, description="seconds per request", json_schema_extra=NOT_AN_INPUT
    )
    max_retries: int = Field(3, ge=0, json_schema_extra=NOT_AN_INPUT)
    tensor_parallel_size: int = Field(1, ge=1, description="vllm backend")
    max_model_len: int | None = None
    reasoning_parser: str | None = Field(
        None, description="server/engine splits the reasoning off (e.g. deepseek_r1)"
    )
    fold_system_prompt: bool = Field(
        False, description="put the system prompt into the user turn (DeepSeek-R1 distills)"
    )
    engine_args: dict[str, object] = Field(
        default_factory=dict, description="extra vllm.LLM / server arguments"
    )
    throughput: Throughput | None = Field(
        None,
        description="measured rate of one replica: the dry run's GPU-hours",
        json_schema_extra=NOT_AN_INPUT,
    )
    ray: RayModelSettings | None = Field(
        None,
        description="backend ray: replicas and batch size; with base_urls the requests go "
        "to those servers (HttpRequestProcessorConfig), without them vLLM runs in the "
        "cluster (vLLMEngineProcessorConfig)",
        json_schema_extra=NOT_AN_INPUT,
    )

    @field_validator("server_python")
    @classmethod
    def _server_python_exists(cls, value: str | None) -> str | None:
        # Checked when the recipe loads, not after ingest and chunking.
        if value is not None and not Path(value).expanduser().exists():
            raise ValueError(
                f"{value} does not exist (the python of an environment with vLLM, "
                "e.g. .venv-vllm/bin/python; leave it out to use the project's)"
            )
        return value

    @model_validator(mode="after")
    def _keys_the_backend_reads(self) -> ModelConfig:
        # Every key set must be read: name the ones this backend would ignore.
        if self.backend != "ray" and self.ray is not None:
            raise ValueError(f"ray: only read with backend ray, not {self.backend}")
        if self.backend == "vllm":
            ignored = [
                k for k in ("base_urls", "local_server", "server_python") if getattr(self, k)
            ]
        elif self.backend == "ray":
            ignored = [k for k in ("local_server", "server_python") if getattr(self, k)]
            if self.base_urls:  # servers someone else runs hold the engine settings
                ignored += [k for k in ("engine_args", "max_model_len") if getattr(self, k)]
                ignored += ["tensor_parallel_size"] if self.tensor_parallel_size > 1 else []
        elif not self.local_server:  # a server someone else runs holds these settings
            keys = ("engine_args", "max_model_len", "server_python")
            ignored = [k for k in keys if getattr(self, k)]
            ignored += ["tensor_parallel_size"] if self.tensor_parallel_size > 1 else []
        else:
            ignored = []
        if ignored:
            where = {"vllm": "backend vllm", "ray": "backend ray"}.get(
                self.backend, "a server at base_urls"
            )
            raise ValueError(f"{', '.join(ignored)}: not used with {where}")
        return self

    @property
    def model_id(self) -> str:
        """The rows' `generator`: the model's name and revision. A path (a local folder,
        or one a server someone else runs was started with, which need not exist here)
        shows its last part only: rows are published, and the machine's folders are
        its own business (builders/core/private.py)."""
        return f"{shown_model_name(self.model)}@{self.revision or 'unpinned'}"

    def identity(self, memo_dir: Path | None = None) -> str:
        """What the model writes is made from, for the cache key: its weights (a local
        folder by content, a Hub id by id and revision) and every setting marked as an
        input (engine arguments, context length, reasoning parser...), never a path."""
        from vlm_autodrive.builders.core.fingerprint import input_values, model_identity

        weights = model_identity(self.model, self.revision, memo_dir)
        settings = input_values(self)
        settings.pop("revision", None)  # in `weights` already
        if not settings.get("engine_args"):
            settings.pop("engine_args", None)
        text = json.dumps({"weights": weights, "settings": settings}, sort_keys=True)
        return "model:" + hashlib.sha256(text.encode()).hexdigest()


class SplitGenConfig(Strict):
    """Sampling and model choice for one model-made config (`generate.configs.NAME`)."""

    model: str | None = Field(
        None, description="a key of generate.models (not needed with import_file)"
    )
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(1024, ge=1)
    n: int = Field(1, ge=1, description="samples per clip (reasoning_mcq keeps the correct)")
    seed: int = Field(
        0, description="base seed; each clip's request is seeded from it and the clip id"
    )
    share_prompts: bool = Field(
        False,
        description="clips of one side (train or test) with identical prompts share one "
        "request (and its `n` samples); off: one request per clip",
    )
    max_output_chars: int = Field(
        200_000,
        ge=1,
        description="a sample whose text and reasoning exceed this many characters is a "
        "failure; the cache keeps only this many of them",
    )
    import_file: str | None = Field(
        None,
        description="caption_vlm: JSONL of {clip_id, caption} made elsewhere, no model",
        json_schema_extra=FILE_INPUT,
    )
    check: SplitGenConfig | None = Field(
        None,
        description="reasoning_revised: the independent check (a model re-asked with the "
        "revised trace and no answer; kept only when it concludes the ground truth); "
        "null: off",
    )
    target: dict[str, PositiveInt] = Field(
        default_factory=dict,
        description="valid train rows wanted per class, e.g. {Collision: 1000}: clips of a "
        "class short of it are asked again (more rounds, each a new seeded request) until "
        "it is reached or the class's `budget` is spent (builders/generate/target.py)",
    )
    budget: dict[str, PositiveInt] = Field(
        default_factory=dict,
        description="with target: the most requests per class, its first request per train "
        "clip included, e.g. {Collision: 5000}; one for every class of `target`",
    )

    @model_validator(mode="after")
    def _model_or_import(self) -> SplitGenConfig:
        # `caption_vlm: {import_file: captions.jsonl}` is complete: no model is asked
        if self.model is None and not self.import_file:
            raise ValueError("model: required (a key of generate.models), unless import_file")
        return self

    @model_validator(mode="after")
    def _target_and_budget(self) -> SplitGenConfig:
        # Every class asked for has a bound on what it may cost, and every bound a target.
        if missing := [c for c in self.target if c not in self.budget]:
            raise ValueError(
                f"budget.{missing[0]}: required with target.{missing[0]} (the most requests "
                "the class may take, its first request per train clip included)"
            )
        if extra := [c for c in self.budget if c not in self.target]:
            raise ValueError(f"budget.{extra[0]}: no target.{extra[0]} to spend it on")
        if self.target and self.import_file:
            raise ValueError(
                "target: imported captions are not generated; no target with import_file"
            )
        if self.target and self.share_prompts:
            raise ValueError(
                "target: asks the clips of a class again one by one; not with share_prompts"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _removed_keys(cls, data: object) -> object:
        if isinstance(data, dict) and "fps" in data:
            raise ValueError(
                "fps was removed from the model configs: the VLM's frame rate is its engine's "
                "setting, generate.models.<vlm>.engine_args.media_io_kwargs: {video: {fps: N}}"
            )
        return data


class GenerateConfig(Strict):
    """Models and the model-made configs to build (in dependency order)."""

    prompts: str | None = Field(
        None, description="folder searched before bundled prompts", json_schema_extra=FILE_INPUT
    )
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    configs: dict[str, SplitGenConfig] = Field(
        default_factory=dict,
        description="model-made configs to build, by name (the list: generate/tasks/__init__.py)",
    )

    @field_validator("configs")
    @classmethod
    def _known_configs(cls, value: dict[str, SplitGenConfig]) -> dict[str, SplitGenConfig]:
        # The config list is the task registry itself, not a copy of its names.
        from vlm_autodrive.builders.generate.tasks import MODEL_SPLITS

        unknown = [n for n in value if n not in MODEL_SPLITS]
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)}: not a model-made config; the configs are "
                f"{', '.join(MODEL_SPLITS)}"
            )
        return value

    @model_validator(mode="after")
    def _models_exist(self) -> GenerateConfig:
        for name, split in self.configs.items():
            if split.check is not None:
                if name != "reasoning_revised":
                    raise ValueError(f"configs.{name}.check: only reasoning_revised has a check")
                if split.check.model not in self.models:
                    raise ValueError(
                        f"configs.{name}.check.model: {split.check.model!r} is not in "
                        f"generate.models ({sorted(self.models)})"
                    )
                if split.check.n != 1 or split.check.check is not None:
                    raise ValueError(f"configs.{name}.check: n must be 1, and no check of its own")
                if split.check.target:
                    raise ValueError(f"configs.{name}.check.target: the check has no target")
        if self.configs.get("reasoning_revised") and self.configs["reasoning_revised"].target:
            raise ValueError(
                "configs.reasoning_revised.target: it revises the failures of reasoning_mcq; "
                "set the target on reasoning_mcq"
            )
        if "reasoning_revised" in self.configs and "reasoning_mcq" not in self.configs:
            raise ValueError(
                "configs.reasoning_revised: revises the failures of reasoning_mcq; "
                "add reasoning_mcq to generate.configs"
            )
        for name, split in self.configs.items():
            if split.model not in self.models and not split.import_file:
                raise ValueError(
                    f"configs.{name}.model: {split.model!r} is not in generate.models "
                    f"({sorted(self.models)})"
                )
        return self
