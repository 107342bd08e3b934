// @ts-check
// Where the examples find a provider: the bundled mock (`opengateway-mock`), at $OGW_MOCK_URL
// when set, else started from $OGW_BIN_DIR (default <repo>/target/debug) on 127.0.0.1.
import { spawn } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

/**
 * The mock's base URL (`http://127.0.0.1:PORT`) and a function that stops it if we started it.
 * @returns {Promise<{ url: string, stop: () => void }>}
 */
export async function mockProvider() {
  if (process.env.OGW_MOCK_URL) return { url: process.env.OGW_MOCK_URL, stop: () => {} }
  const bin = path.join(process.env.OGW_BIN_DIR || path.join(REPO_ROOT, 'target', 'debug'), 'opengateway-mock')
  const child = spawn(bin, ['--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] })
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the mock printed no address within 15 s')), 15_000)
    child.once('error', reject)
    child.stdout.on('data', (data) => {
      const m = /listening on (http:\/\/\S+)/.exec(String(data))
      if (m) {
        clearTimeout(timer)
        resolve(m[1])
      }
    })
  })
  return { url, stop: () => child.kill('SIGTERM') }
}

/**
 * A config with an OpenAI-type provider named `openai` served by the mock.
 * @param {string} url
 * @returns {import('opengateway').GatewayConfig}
 */
export function mockConfig(url) {
  return { providers: { openai: { type: 'openai', api_base: `${url}/v1`, api_key: 'none' } } }
}
