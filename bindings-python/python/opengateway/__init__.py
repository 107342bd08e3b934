"""opengateway: one OpenAI-compatible interface to every major LLM provider, in process."""

from opengateway._native import __version__, core_version

__all__ = ["__version__", "core_version"]
