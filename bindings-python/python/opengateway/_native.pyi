"""Type stubs for the Rust extension module ``opengateway._native``."""

__all__ = ["core_version", "__version__"]

__version__: str
"""Version of this package (the workspace version, shared with the core crate)."""

def core_version() -> str:
    """Return the version of the ``opengateway`` core this module was built from."""
