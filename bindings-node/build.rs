//! Emits the linker arguments a Node-API addon needs (undefined `napi_*` symbols on macOS, etc.).

fn main() {
    napi_build::setup();
}
