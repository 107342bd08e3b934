// Runs before `npm pack`: the workspace's release profile keeps debug line tables (for the
// server's backtraces), which make the addon about 75 MB; the package ships it without them.
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
const args = process.platform === 'darwin' ? ['-S'] : ['--strip-debug']
for (const name of fs.readdirSync(root).filter((n) => /^opengateway\..+\.node$/.test(n))) {
  const file = path.join(root, name)
  const before = fs.statSync(file).size
  try {
    execFileSync('strip', [...args, file], { stdio: 'inherit' })
    const after = fs.statSync(file).size
    console.log(`stripped debug info from ${name}: ${(before / 1e6).toFixed(1)} MB -> ${(after / 1e6).toFixed(1)} MB`)
  } catch (e) {
    console.warn(`cannot run strip (${e.message}); packing ${name} with its debug info`)
  }
}
