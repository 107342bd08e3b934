'use strict'

// Public CommonJS entry point. The native functions come from `native.cjs`, which
// `npm run build` (napi build) generates together with `native.d.ts`; never edit those by hand.
const native = require('./native.cjs')

/** Returns the version of this package (the workspace version, shared with the Rust core). */
module.exports.version = native.version
