// @ts-check
// Cost report: tag calls, then total the usage ledger by model and day, and by tag.
// The mock reports the token counts its `mock` body object pins (a field any OpenAI-type
// provider receives as it is); prices come from the pricing catalog
// (mock models have none, so `pricing.models` sets prices of our own, in LiteLLM's field names).
import { Gateway } from 'opengateway'
import { mockConfig, mockProvider } from './_mock.mjs'

const mock = await mockProvider()
try {
  const gw = new Gateway({
    ...mockConfig(mock.url),
    pricing: {
      models: {
        'openai/mock-gpt': { input_cost_per_token: 3e-6, output_cost_per_token: 15e-6 },
        'openai/mock-gpt-mini': { input_cost_per_token: 0.15e-6, output_cost_per_token: 0.6e-6 },
      },
    },
  })
  gw.onRequestEnd((record) => {
    console.log(`request ${record.id}: ${record.status}, ${record.tokens.prompt}+${record.tokens.completion} tokens`)
  })
  const messages = [{ role: /** @type {const} */ ('user'), content: 'Summarise this.' }]
  await gw.chat.completions.create({ model: 'openai/mock-gpt', messages, mock: { prompt_tokens: 1200, completion_tokens: 300 }, tags: ['team-a'] })
  await gw.chat.completions.create({ model: 'openai/mock-gpt-mini', messages, mock: { prompt_tokens: 800, completion_tokens: 100 }, tags: ['team-b'] })
  await gw.chat.completions.create({ model: 'openai/mock-gpt-mini', messages, tags: ['team-b'] })
  await gw.flush()

  console.log('\nby model and day:')
  for (const row of await gw.usage({ by: ['model', 'day'] })) {
    console.log(`  ${row.group.day} ${row.group.model}: ${row.requests} requests, ${row.prompt_tokens}+${row.completion_tokens} tokens, $${row.total_cost_usd.toFixed(6)}`)
  }
  console.log('by tag (last hour):')
  for (const row of await gw.usage({ by: 'tag', since: new Date(Date.now() - 3_600_000) })) {
    console.log(`  ${row.group.tag}: ${row.requests} requests, $${row.total_cost_usd.toFixed(6)}`)
  }
} finally {
  mock.stop()
}
