"""Model backends: one request/response shape for in-process vLLM and OpenAI-compatible servers."""
