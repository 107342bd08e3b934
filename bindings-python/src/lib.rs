//! Python bindings for `opengateway`, built by maturin into the `opengateway._native` module.

use pyo3::prelude::*;

/// The native extension module `opengateway._native`.
#[pymodule]
mod _native {
    use pyo3::prelude::*;

    /// Returns the version of the `opengateway` core this module was built from.
    #[pyfunction]
    fn core_version() -> &'static str {
        opengateway::VERSION
    }

    /// Sets `__version__` to this package's version (the workspace version, shared with core).
    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}
