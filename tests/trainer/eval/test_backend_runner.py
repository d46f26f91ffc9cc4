"""The vLLM / OpenAI-compatible runner: the requests it builds (video as a `video_url` part,
system turn, greedy sampling), how it reads responses and errors, and the engine/server
arguments that make vLLM sample clips like the eval's video settings. The backend is a
stand-in here: the real ones are tested with the backends."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from vlm_autodrive.builders.generate.backends.base import Completion, GenerationResponse
from vlm_autodrive.trainer.eval.runners import backend_runner
from vlm_autodrive.trainer.eval.runners.backend_runner import (
    BackendRunner,
    backend_config,
    vllm_video_args,
)
from vlm_autodrive.trainer.eval.runners.base import EvalItem, VideoSettings

VIDEO = VideoSettings(fps=2.0, max_frames=16, max_pixels=81920)


class FakeBackend:
    model_id = "served@1"

    def __init__(self):
        self.requests = []

    def generate(self, requests):
        for req in requests:
            self.requests.append(req)
            if req.request_id == "bad":
                yield GenerationResponse(req.request_id, error="HTTP 400: video too long")
            elif req.request_id == "think":
                c = Completion("B", reasoning="The cars touch.", finish_reason="stop")
                yield GenerationResponse(req.request_id, [c])
            elif req.request_id != "dropped":
                yield GenerationResponse(req.request_id, [Completion("A", finish_reason="stop")])


@pytest.fixture
def fake(monkeypatch):
    backend = FakeBackend()
    monkeypatch.setattr(
        "vlm_autodrive.builders.generate.backends.factory.open_backend", lambda cfg, stack: backend
    )
    return backend


def items(tmp_path: Path) -> list[EvalItem]:
    clip = tmp_path / "clips" / "v 1.mp4"
    clip.parent.mkdir()
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    return [
        EvalItem(key, clip, "Which event? A. x B. y", "direct", 32, "Be brief.")
        for key in ("ok", "think", "bad", "dropped")
    ] + [EvalItem("missing", tmp_path / "nope.mp4", "q", "direct", 32)]


def test_requests_and_responses(fake, tmp_path):
    cfg = backend_config("openai", "m", VIDEO, tmp_path, base_urls=["http://127.0.0.1:1/v1"])
    runner = BackendRunner(cfg, VIDEO, "file")
    outs = {o.key: o for o in runner.generate(items(tmp_path))}
    runner.close()
    assert runner.model_id == "served@1"
    req = fake.requests[0]
    system, user = req.messages
    assert system == {"role": "system", "content": "Be brief."}
    video, text = user["content"]
    assert video["type"] == "video_url"
    assert video["video_url"]["url"] == (tmp_path / "clips" / "v 1.mp4").as_uri()
    assert "%20" in video["video_url"]["url"]  # a path with a space stays a valid URL
    assert text == {"type": "text", "text": "Which event? A. x B. y"}
    assert (req.sampling.temperature, req.sampling.max_tokens, req.sampling.n) == (0.0, 32, 1)
    assert outs["ok"].text == "A" and outs["ok"].error is None
    assert (outs["think"].text, outs["think"].reasoning) == ("B", "The cars touch.")
    assert outs["bad"].error == "HTTP 400: video too long"
    assert outs["dropped"].error == "the backend returned no response"
    assert "FileNotFoundError" not in (outs["missing"].error or "")  # file URLs are not read
    assert runner.describe()["server"] == "http://127.0.0.1:1/v1"


def test_data_urls_carry_the_clip_bytes(fake, tmp_path):
    cfg = backend_config("openai", "m", VIDEO, tmp_path, base_urls=["http://h:8000/v1"])
    runner = BackendRunner(cfg, VIDEO, "data")
    outs = {o.key: o for o in runner.generate(items(tmp_path))}
    url = fake.requests[0].messages[1]["content"][0]["video_url"]["url"]
    assert url.startswith("data:video/mp4;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == b"\x00\x00\x00\x18ftypmp42"
    assert "FileNotFoundError" in outs["missing"].error  # an unreadable clip fails its item
    assert len(fake.requests) == 4


def test_engine_and_server_arguments_follow_the_video_settings(tmp_path):
    args = vllm_video_args(VIDEO, tmp_path)
    assert args == {
        "allowed_local_media_path": str(tmp_path),
        "limit_mm_per_prompt": {"image": 0, "video": 1},
        "media_io_kwargs": {"video": {"fps": 2.0, "num_frames": 16}},
        "mm_processor_kwargs": {"max_pixels": 81920},
    }
    engine = backend_config("vllm", "m", VIDEO, tmp_path)
    assert engine.backend == "vllm" and engine.engine_args == args
    local = backend_config("openai", "m", VIDEO, tmp_path)
    assert local.local_server and local.backend == "openai"
    assert json.loads(local.engine_args["media_io_kwargs"]) == args["media_io_kwargs"]
    remote = backend_config("openai", "m", VIDEO, tmp_path, base_urls=["http://h/v1"])
    assert not remote.local_server and remote.engine_args == {}  # the server's own settings
    with pytest.raises(ValueError):
        BackendRunner(remote, VIDEO, "ftp")
    assert backend_runner.vllm_video_args(VideoSettings(None, None, None), tmp_path) == {
        "allowed_local_media_path": str(tmp_path),
        "limit_mm_per_prompt": {"image": 0, "video": 1},
    }
