// @ts-check
// Quickstart: one chat completion, in process, with its provider, cost and route.
// With real keys, use `new Gateway()` (providers from OPENAI_API_KEY, ANTHROPIC_API_KEY, ...)
// or `new Gateway('opengateway.yaml')`; here the bundled mock provider answers.
import { Gateway } from 'opengateway'
import { mockConfig, mockProvider } from './_mock.mjs'

const mock = await mockProvider()
try {
  const gw = new Gateway(mockConfig(mock.url))
  const answer = await gw.chat.completions.create({
    model: 'openai/mock-gpt',
    messages: [{ role: 'user', content: 'Say hello in one sentence.' }],
    max_tokens: 50,
  })
  console.log(answer.choices[0].message.content)
  console.log(`served by ${answer.provider} (${answer.route.model}), cost $${answer.usage?.cost ?? 0}, request ${answer.requestId}`)
} finally {
  mock.stop()
}
