// Starts the bundled mock provider (`opengateway-mock` from $OGW_BIN_DIR, default
// <repo>/target/debug) on 127.0.0.1 and gives its base URL; shared by the tests and examples.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const BIN_DIR = process.env.OGW_BIN_DIR || path.join(REPO_ROOT, 'target', 'debug')

/** Starts the mock; resolves with `{ url, stop }` where `url` is `http://127.0.0.1:PORT`. */
export function startMock(args = []) {
  const bin = path.join(BIN_DIR, 'opengateway-mock')
  if (!existsSync(bin)) throw new Error(`${bin} does not exist: run \`cargo build --bins\` or set OGW_BIN_DIR`)
  const child = spawn(bin, ['--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('mock printed no address within 15 s')), 15_000)
    let buffered = ''
    child.once('exit', (code) => reject(new Error(`mock exited early (${code})`)))
    child.stdout.on('data', (data) => {
      buffered += data
      const m = /listening on (http:\/\/\S+)/.exec(buffered)
      if (!m) return
      clearTimeout(timer)
      child.stdout.removeAllListeners('data')
      child.stdout.resume()
      child.removeAllListeners('exit')
      const stop = () =>
        new Promise((done) => {
          if (child.exitCode !== null) return done()
          child.once('exit', () => done())
          child.kill('SIGTERM')
        })
      resolve({ url: m[1], stop })
    })
  })
}

/** A gateway config with one OpenAI-type provider `mock` pointed at the mock. */
export function mockConfig(url, extra = {}) {
  return {
    providers: { mock: { type: 'openai', api_base: `${url}/v1`, api_key: 'none' } },
    ...extra,
  }
}
