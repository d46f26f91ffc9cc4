"""Model runners for the evaluation harness: transformers (in process) and OpenAI-compatible
servers such as `vllm serve` (video sent as `video_url` parts)."""
