// @ts-check
// Streaming: chunks with `for await`; an AbortSignal (or leaving the loop) stops the upstream
// request, and the usage ledger records it as cancelled.
import { Gateway, APIUserAbortError } from 'opengateway'
import { mockConfig, mockProvider } from './_mock.mjs'

const mock = await mockProvider()
try {
  const gw = new Gateway(mockConfig(mock.url))
  const stream = await gw.chat.completions.create({
    model: 'openai/mock-gpt',
    messages: [{ role: 'user', content: 'Tell me a short story.' }],
    stream: true,
    stream_options: { include_usage: true },
  })
  for await (const chunk of stream) {
    process.stdout.write(chunk.choices[0]?.delta?.content ?? '')
    if (chunk.usage) console.log(`\n[${chunk.usage.completion_tokens} tokens, $${chunk.usage.cost}]`)
  }

  // Abort a slow stream after its first chunk.
  const controller = new AbortController()
  const slow = await gw.chat.completions.create({
    model: 'openai/mock-gpt~chunk_delay_ms=200',
    messages: [{ role: 'user', content: 'A long answer, please.' }],
    stream: true,
    signal: controller.signal,
  })
  try {
    for await (const chunk of slow) {
      console.log('first chunk:', JSON.stringify(chunk.choices[0]?.delta))
      controller.abort()
    }
  } catch (e) {
    if (!(e instanceof APIUserAbortError)) throw e
    console.log('aborted')
  }
  await gw.flush()
  const [record] = await gw.usageRecords({ limit: 1 })
  console.log(`ledger: ${record.id} ${record.status}`)
} finally {
  mock.stop()
}
