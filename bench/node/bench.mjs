// Per-call overhead and load time of the opengateway binding vs the official `openai` package,
// both calling the same mock provider on 127.0.0.1 (so the difference is client overhead, plus
// the gateway's routing and accounting). Run: `node bench.mjs` after `npm install` here and
// `npm run build` in bindings-node; the mock comes from $OGW_BIN_DIR (default <repo>/target/debug).
import { execFileSync, spawn } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import OpenAI from 'openai'
import { Gateway } from 'opengateway'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const BIN_DIR = process.env.OGW_BIN_DIR || path.join(HERE, '..', '..', 'target', 'debug')
const SEQUENTIAL = Number(process.env.BENCH_SEQUENTIAL || 2000)
const CONCURRENT_TOTAL = Number(process.env.BENCH_CONCURRENT_TOTAL || 10000)
const CONCURRENCY = 100
const LOADS = 20

const mock = spawn(path.join(BIN_DIR, 'opengateway-mock'), ['--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] })
const url = await new Promise((resolve) => mock.stdout.on('data', (d) => { const m = /listening on (\S+)/.exec(String(d)); if (m) resolve(m[1]) }))

const messages = [{ role: 'user', content: 'Hello' }]
const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 })
const gw = new Gateway({ providers: { mock: { type: 'openai', api_base: `${url}/v1`, api_key: 'none' } } })
const viaOpenai = () => openai.chat.completions.create({ model: 'mock-gpt', messages })
const viaGateway = () => gw.chat.completions.create({ model: 'mock/mock-gpt', messages })

async function sequential(call, n) {
  for (let i = 0; i < 200; i++) await call() // warm-up: connections, JIT
  const t = process.hrtime.bigint()
  for (let i = 0; i < n; i++) await call()
  return Number(process.hrtime.bigint() - t) / 1e3 / n // µs per call
}

async function concurrent(call, total) {
  await Promise.all(Array.from({ length: CONCURRENCY }, call)) // warm-up
  let next = 0
  const t = process.hrtime.bigint()
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => { while (next++ < total) await call() }))
  return Number(process.hrtime.bigint() - t) / 1e3 / total // µs per call (wall / calls)
}

function loadTime(spec) {
  const code = `const t=process.hrtime.bigint();require(${JSON.stringify(spec)});process.stdout.write(String(Number(process.hrtime.bigint()-t)/1e6))`
  const runs = Array.from({ length: LOADS }, () => Number(execFileSync(process.execPath, ['-e', code], { cwd: HERE })))
  runs.sort((a, b) => a - b)
  return runs[Math.floor(LOADS / 2)] // median ms
}

const rows = []
const add = (name, base, ours, unit) => rows.push({ name, openai: base, opengateway: ours, ratio: ours / base, unit })
add('require() (median of 20 fresh processes)', loadTime('openai'), loadTime('opengateway'), 'ms')
add(`sequential, ${SEQUENTIAL} calls`, await sequential(viaOpenai, SEQUENTIAL), await sequential(viaGateway, SEQUENTIAL), 'µs/call')
add(`100-way concurrent, ${CONCURRENT_TOTAL} calls`, await concurrent(viaOpenai, CONCURRENT_TOTAL), await concurrent(viaGateway, CONCURRENT_TOTAL), 'µs/call')
mock.kill('SIGTERM')

console.log(`node ${process.version}, ${os.cpus()[0].model} x${os.cpus().length}, ${os.platform()} ${os.release()}`)
console.log('| measure | openai 6.49.0 (baseline) | opengateway | ratio |')
console.log('|---|---|---|---|')
for (const r of rows) console.log(`| ${r.name} | ${r.openai.toFixed(1)} ${r.unit} | ${r.opengateway.toFixed(1)} ${r.unit} | ${r.ratio.toFixed(2)}x |`)
