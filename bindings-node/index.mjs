// Public ES module entry point; see index.js for the CommonJS one.
import native from './native.cjs'

/** Returns the version of this package (the workspace version, shared with the Rust core). */
export const version = native.version
