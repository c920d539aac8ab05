"""Support for tests that run real serving engines: a tiny GGUF model and a llama-server runner."""
