// @ts-check
// Fallback: an alias with ordered targets, and request-level `models`. The first target
// fails (the mock answers 503), the next one serves; every attempt is on `answer.route`.
// A failure of every target rejects with a typed error carrying the attempts.
import { Gateway, RateLimitError } from 'opengateway'
import { mockProvider } from './_mock.mjs'

const mock = await mockProvider()
try {
  const gw = new Gateway({
    providers: {
      primary: { type: 'openai', api_base: `${mock.url}/v1`, api_key: 'none' },
      backup: { type: 'openai', api_base: `${mock.url}/v1`, api_key: 'none' },
    },
    models: [{ name: 'smart', targets: ['primary/mock-gpt~status=503', 'backup/mock-gpt-mini'] }],
    router: { retries: 0 },
  })
  const messages = [{ role: /** @type {const} */ ('user'), content: 'Hello!' }]

  const answer = await gw.chat.completions.create({ model: 'smart', messages })
  console.log(`alias smart served by ${answer.route.provider}/${answer.route.model}`)
  for (const a of answer.route.attempts) console.log(`  ${a.provider}/${a.model}: ${a.status} (${a.latency_ms} ms)`)

  const viaModels = await gw.chat.completions.create({ model: 'primary/mock-gpt~status=503', models: ['backup/mock-gpt'], messages })
  console.log(`models fallback served by ${viaModels.route.provider}`)

  try {
    await gw.chat.completions.create({ model: 'primary/mock-gpt~status=429', messages })
  } catch (e) {
    if (!(e instanceof RateLimitError)) throw e
    console.log(`${e.name}: status ${e.status} from ${e.provider} after ${e.attempts.length} attempt(s)`)
  }
} finally {
  mock.stop()
}
