//! Node.js bindings for `opengateway`, built by `napi build` into `opengateway.<platform>.node`.

use napi_derive::napi;

/// Returns the version of the `opengateway` core this addon was built from.
#[napi]
pub fn version() -> String {
    opengateway::VERSION.to_owned()
}
