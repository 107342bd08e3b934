// Types of the public entry points (index.js, index.mjs). The native declarations are generated
// into native.d.ts by `npm run build`.
export { version } from './native'
