// The Node binding end to end: every public call against the bundled mock provider on
// 127.0.0.1 (no internet). Build the addon first (`npm run build`) and the mock
// (`cargo build --bins`; found in $OGW_BIN_DIR, default <repo>/target/debug).

import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

import {
  Gateway,
  APIError,
  APIConnectionError,
  APITimeoutError,
  APIUserAbortError,
  BudgetExceededError,
  AuthenticationError,
  BadRequestError,
  InternalServerError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitError,
  version,
} from '../index.mjs'
import { mockConfig, startMock } from './mock.mjs'

const MESSAGES = [{ role: 'user', content: 'Hello binding' }]
/** Bounded waits: a hung call fails the test instead of the whole run. */
const within = (ms, promise) =>
  Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref())])

let mock
let gw

before(async () => {
  mock = await startMock()
  // No retries: error tests see the first answer, and stay fast.
  gw = new Gateway(mockConfig(mock.url, { router: { retries: 0 } }))
})
after(async () => {
  await mock?.stop()
})

/** The ledger record of a request, once settled (the ledger writes off the response path). */
async function recordOf(filter) {
  for (let i = 0; i < 100; i++) {
    await gw.flush()
    const [rec] = await gw.usageRecords({ limit: 1, ...filter })
    if (rec && rec.status !== 'pending') return rec
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error(`no settled record for ${JSON.stringify(filter)}`)
}

describe('loading', () => {
  test('require and import give the same classes', () => {
    const require = createRequire(import.meta.url)
    const cjs = require('../index.js')
    assert.equal(cjs.Gateway, Gateway)
    assert.equal(cjs.APIError, APIError)
    assert.match(version(), /^\d+\.\d+\.\d+/)
  })

  test('config from a YAML path; a bad config is a BadRequestError', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ogw-node-'))
    try {
      const file = path.join(dir, 'opengateway.yaml')
      writeFileSync(file, `providers:\n  mock: { type: openai, api_base: "${mock.url}/v1", api_key: none }\n`)
      assert.ok(new Gateway(file))
      assert.throws(() => new Gateway({ providers: { x: { type: 'openai', bogus: 1 } } }), BadRequestError)
      assert.throws(() => new Gateway(path.join(dir, 'missing.yaml')), BadRequestError)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('chat.completions.create', () => {
  test('answers in the OpenAI shape with cost, provider, route and request id', async () => {
    const answer = await gw.chat.completions.create({ model: 'mock/mock-gpt', messages: MESSAGES, temperature: 0.5, max_tokens: 20 })
    assert.equal(answer.object, 'chat.completion')
    assert.match(answer.choices[0].message.content, /Hello binding/)
    assert.equal(answer.provider, 'mock')
    assert.equal(typeof answer.usage.cost, 'number')
    assert.equal(answer.route.provider, 'mock')
    assert.equal(answer.route.model, 'mock-gpt')
    assert.equal(answer.route.attempts.length, 1)
    assert.match(answer.requestId, /^req_/)
    // The routing record stays out of the OpenAI shape.
    assert.deepEqual(Object.keys(answer).includes('route'), false)
    assert.equal(JSON.parse(JSON.stringify(answer)).requestId, undefined)
  })

  test('falls back through `models` and records every attempt', async () => {
    const answer = await gw.chat.completions.create({
      model: 'mock/mock-gpt~status=503',
      models: ['mock/mock-gpt-mini'],
      messages: MESSAGES,
    })
    assert.equal(answer.route.model, 'mock-gpt-mini')
    assert.deepEqual(answer.route.attempts.map((a) => a.status), [503, 200])
  })

  test('streams chunks with `for await`, usage last when asked', async () => {
    const stream = await gw.chat.completions.create({
      model: 'mock/mock-gpt',
      messages: MESSAGES,
      stream: true,
      stream_options: { include_usage: true },
    })
    assert.equal(stream.route.provider, 'mock')
    assert.match(stream.requestId, /^req_/)
    let text = ''
    let last
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'chat.completion.chunk')
      text += chunk.choices[0]?.delta?.content ?? ''
      last = chunk
    }
    assert.match(text, /Hello binding/)
    assert.equal(typeof last.usage.cost, 'number')
    const rec = await recordOf({ model: 'mock/mock-gpt', status: 'ok' })
    assert.equal(rec.status, 'ok')
  })

  for (const [status, cls] of [
    [400, BadRequestError],
    [401, AuthenticationError],
    [403, PermissionDeniedError],
    [404, NotFoundError],
    [429, RateLimitError],
    [500, InternalServerError],
    [503, InternalServerError],
  ]) {
    test(`mock status ${status} rejects with ${cls.name}`, async () => {
      const model = `mock/mock-gpt~status=${status}`
      await assert.rejects(gw.chat.completions.create({ model, messages: MESSAGES }), (e) => {
        assert.ok(e instanceof cls, `${e.constructor.name}: ${e.message}`)
        assert.ok(e instanceof APIError)
        assert.equal(e.status, status)
        assert.equal(e.provider, 'mock')
        assert.ok(e.attempts.length >= 1)
        assert.equal(e.attempts.at(-1).status, status)
        assert.equal(typeof e.error.message, 'string')
        return true
      })
      // Streams fail the same way before their first chunk.
      await assert.rejects(gw.chat.completions.create({ model, messages: MESSAGES, stream: true }), cls)
    })
  }

  test('an unknown model is a NotFoundError naming `model`', async () => {
    await assert.rejects(gw.chat.completions.create({ model: 'nowhere/x', messages: MESSAGES }), (e) => {
      assert.ok(e instanceof NotFoundError)
      assert.equal(e.status, 404)
      assert.equal(e.param, 'model')
      assert.equal(e.code, 'model_not_found')
      return true
    })
  })

  test('a bad field is a BadRequestError naming it', async () => {
    await assert.rejects(gw.chat.completions.create({ model: 'mock/mock-gpt', messages: MESSAGES, temperature: 'hot' }), (e) => {
      assert.ok(e instanceof BadRequestError)
      assert.equal(e.param, 'temperature')
      assert.equal(e.type, 'invalid_request_error')
      return true
    })
    await assert.rejects(gw.chat.completions.create({ model: 'mock/mock-gpt', messages: [] }), (e) => e instanceof BadRequestError && e.param === 'messages')
  })

  test('`timeout` (ms) becomes an APITimeoutError', async () => {
    await assert.rejects(
      within(10_000, gw.chat.completions.create({ model: 'mock/mock-gpt~first_byte_delay_ms=3000', messages: MESSAGES, timeout: 200 })),
      (e) => e instanceof APITimeoutError && e instanceof APIConnectionError && e.status === 504,
    )
  })

  test('a spending cap rejects with BudgetExceededError, a RateLimitError', async () => {
    const capped = new Gateway(mockConfig(mock.url, {
      budgets: [{ name: 'tiny', model: 'mock/mock-gpt', limit_usd: 1e-9 }],
      pricing: { models: { 'openai/mock-gpt': { input_cost_per_token: 1e-6, output_cost_per_token: 1e-6 } } },
    }))
    await assert.rejects(capped.chat.completions.create({ model: 'mock/mock-gpt', messages: MESSAGES, max_tokens: 10 }), (e) => {
      assert.ok(e instanceof BudgetExceededError && e instanceof RateLimitError)
      assert.equal(e.status, 429)
      assert.equal(e.type, 'budget_exceeded')
      return true
    })
  })

  test('an unreachable provider is an APIConnectionError', async () => {
    const dead = new Gateway({ providers: { dead: { type: 'openai', api_base: 'http://127.0.0.1:9/v1', api_key: 'none' } }, router: { retries: 0 } })
    await assert.rejects(within(10_000, dead.chat.completions.create({ model: 'dead/x', messages: MESSAGES })), (e) => e instanceof APIConnectionError)
  })

  test('an AbortSignal aborts a pending call; the ledger says cancelled', async () => {
    const model = 'mock/mock-gpt~first_byte_delay_ms=5000'
    const controller = new AbortController()
    const started = Date.now()
    setTimeout(() => controller.abort(), 100)
    await assert.rejects(within(3000, gw.chat.completions.create({ model, messages: MESSAGES, signal: controller.signal })), APIUserAbortError)
    assert.ok(Date.now() - started < 2000)
    assert.equal((await recordOf({ model })).status, 'cancelled')
    // An already aborted signal rejects at once.
    await assert.rejects(gw.chat.completions.create({ model, messages: MESSAGES, signal: AbortSignal.abort() }), APIUserAbortError)
  })

  test('an AbortSignal aborts a stream mid-way; the ledger says cancelled', async () => {
    const model = 'mock/mock-gpt~chunk_delay_ms=200'
    const controller = new AbortController()
    const stream = await gw.chat.completions.create({ model, messages: MESSAGES, stream: true, signal: controller.signal })
    const seen = []
    await assert.rejects(
      within(3000, (async () => {
        for await (const chunk of stream) {
          seen.push(chunk)
          controller.abort()
        }
      })()),
      APIUserAbortError,
    )
    assert.ok(seen.length >= 1)
    assert.equal((await recordOf({ model })).status, 'cancelled')
  })

  test('an early break closes the upstream request; the ledger says cancelled', async () => {
    const model = 'mock/mock-gpt~chunk_delay_ms=100'
    const stream = await gw.chat.completions.create({ model, messages: MESSAGES, stream: true })
    for await (const chunk of stream) {
      assert.ok(chunk)
      break
    }
    const rec = await recordOf({ model })
    assert.equal(rec.status, 'cancelled')
    assert.equal(rec.stream, true)
  })

  test('500 concurrent calls all succeed with distinct request ids', async () => {
    const answers = await within(60_000, Promise.all(
      Array.from({ length: 500 }, (_, i) => gw.chat.completions.create({ model: 'mock/mock-gpt', messages: [{ role: 'user', content: `call ${i}` }] })),
    ))
    assert.equal(answers.length, 500)
    assert.equal(new Set(answers.map((a) => a.requestId)).size, 500)
    answers.forEach((a, i) => assert.match(a.choices[0].message.content, new RegExp(`call ${i}$`)))
  })
})

describe('messages.create', () => {
  test('answers in the Anthropic shape', async () => {
    const msg = await gw.messages.create({ model: 'mock/mock-gpt', max_tokens: 50, messages: MESSAGES })
    assert.equal(msg.type, 'message')
    assert.equal(msg.role, 'assistant')
    assert.match(msg.content[0].text, /Hello binding/)
    assert.equal(msg.stop_reason, 'end_turn')
    assert.equal(msg.route.provider, 'mock')
    assert.match(msg.requestId, /^req_/)
  })

  test('streams Anthropic events', async () => {
    const stream = await gw.messages.create({ model: 'mock/mock-gpt', max_tokens: 50, messages: MESSAGES, stream: true })
    const types = []
    let text = ''
    for await (const event of stream) {
      types.push(event.type)
      if (event.type === 'content_block_delta') text += event.delta.text
    }
    assert.equal(types[0], 'message_start')
    assert.equal(types.at(-1), 'message_stop')
    assert.match(text, /Hello binding/)
  })

  test('errors are the same classes; a bad field names its path', async () => {
    await assert.rejects(gw.messages.create({ model: 'mock/mock-gpt~status=429', max_tokens: 5, messages: MESSAGES }), RateLimitError)
    await assert.rejects(gw.messages.create({ model: 'mock/mock-gpt', messages: MESSAGES }), (e) => e instanceof BadRequestError && e.param === 'max_tokens')
  })
})

describe('usage ledger', () => {
  test('tags are call options: recorded, not sent upstream; usage groups and filters', async () => {
    const tag = `t-${Date.now()}`
    await gw.chat.completions.create({ model: 'mock/mock-gpt', messages: MESSAGES, tags: [tag] })
    await gw.chat.completions.create({ model: 'mock/mock-gpt-mini', messages: MESSAGES, tags: [tag] })
    await gw.flush()
    const rows = await gw.usage({ by: ['model', 'day'], tag })
    assert.deepEqual(rows.map((r) => r.group.model).sort(), ['mock/mock-gpt', 'mock/mock-gpt-mini'])
    assert.ok(rows.every((r) => r.requests === 1 && r.ok === 1 && /^\d{4}-\d\d-\d\d$/.test(r.group.day)))
    const [total] = await gw.usage({ tag, since: new Date(Date.now() - 60_000) })
    assert.equal(total.requests, 2)
    assert.deepEqual(await gw.usage({ tag, until: 0 }), [])
    const records = await gw.usageRecords({ tag, limit: 10 })
    assert.equal(records.length, 2)
    assert.ok(records.every((r) => r.tags.includes(tag) && r.status === 'ok'))
    assert.equal((await gw.usageRecords({ tag, limit: 1 })).length, 1)
    const errors = await gw.usage({ by: 'status', status: 'error' })
    assert.ok(errors.length >= 1 && errors.every((r) => r.group.status === 'error'))
  })

  test('onRequestEnd gets every finished record without blocking', async () => {
    const tag = `hook-${Date.now()}`
    const got = new Promise((resolve) => {
      gw.onRequestEnd((record) => {
        if (record.tags.includes(tag)) resolve(record)
      })
    })
    const answer = await gw.chat.completions.create({ model: 'mock/mock-gpt', messages: MESSAGES, tags: tag })
    const record = await within(5000, got)
    assert.equal(record.id, answer.requestId)
    assert.equal(record.status, 'ok')
    assert.equal(record.provider, 'mock')
  })
})

describe('embeddings', () => {
  /** The mock's providers as OpenAI and Gemini types, and an alias whose first target fails. */
  const embedConfig = () => ({
    providers: {
      mock: { type: 'openai', api_base: `${mock.url}/v1`, api_key: 'none' },
      mockgemini: { type: 'gemini', api_base: `${mock.url}/v1beta`, api_key: 'none' },
      mockanthropic: { type: 'anthropic', api_base: mock.url, api_key: 'none' },
    },
    models: [{ name: 'embed', targets: ['mock/text-embedding-3-small~status=503', 'mockgemini/gemini-embedding-001'] }],
    router: { retries: 0 },
  })

  test('floats by default, with usage, cost, provider and route', async () => {
    const egw = new Gateway(embedConfig())
    const answer = await within(10_000, egw.embeddings.create({ model: 'mock/text-embedding-3-small', input: ['alpha beta', 'gamma'], dimensions: 8, tags: 'emb' }))
    assert.equal(answer.object, 'list')
    assert.deepEqual(answer.data.map((d) => d.index), [0, 1])
    assert.equal(answer.data[0].embedding.length, 8)
    assert.ok(answer.data[0].embedding.every((v) => typeof v === 'number'))
    assert.equal(answer.usage.prompt_tokens, 5)
    assert.ok(Math.abs(answer.usage.cost - 5 * 2e-8) < 1e-15)
    assert.equal(answer.provider, 'mock')
    assert.equal(answer.route.model, 'text-embedding-3-small')
    await egw.flush()
    const [record] = await egw.usageRecords({ tag: 'emb' })
    assert.equal(record.id, answer.requestId)
    assert.equal(record.endpoint, 'embeddings')
  })

  test('base64 from a Gemini-type provider decodes to the float vector', async () => {
    const egw = new Gateway(embedConfig())
    const params = { model: 'mockgemini/gemini-embedding-001', input: 'hola', dimensions: 6 }
    const plain = await egw.embeddings.create(params)
    const packed = await egw.embeddings.create({ ...params, encoding_format: 'base64' })
    const bytes = Buffer.from(packed.data[0].embedding, 'base64')
    const floats = Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4))
    assert.equal(floats.length, 6)
    floats.forEach((v, i) => assert.ok(Math.abs(v - plain.data[0].embedding[i]) < 1e-7))
  })

  test('an alias falls back; errors name the field', async () => {
    const egw = new Gateway(embedConfig())
    const answer = await egw.embeddings.create({ model: 'embed', input: 'x', timeout: 10_000 })
    assert.equal(answer.route.provider, 'mockgemini')
    assert.deepEqual(answer.route.attempts.map((a) => a.status), [503, 200])
    await assert.rejects(egw.embeddings.create({ model: 'mockanthropic/claude-sonnet-4-5', input: 'x' }), (e) => e instanceof BadRequestError && e.param === 'model')
    await assert.rejects(egw.embeddings.create({ model: 'mock/text-embedding-3-small', input: ['a', ''] }), (e) => e instanceof BadRequestError && e.param === 'input[1]')
    await assert.rejects(egw.embeddings.create({ model: 'mockgemini/gemini-embedding-001', input: [1, 2] }), (e) => e instanceof BadRequestError && e.param === 'input')
  })
})
