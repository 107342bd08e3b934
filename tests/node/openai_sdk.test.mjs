// The gateway seen through the official `openai` npm package.
//
// Spawns the mock provider and the gateway (from $OGW_BIN_DIR, default <repo>/target/debug;
// build them with `cargo build --bins`), learns their ports from their first stdout line and
// stops both when the suite ends. Everything runs on 127.0.0.1.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import OpenAI from 'openai';

import { startService, stopService } from './harness.mjs';

const MESSAGES = [{ role: 'user', content: 'Hello gateway' }];
const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    parameters: {
      type: 'object',
      properties: {
        city: { type: 'string' },
        unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
        days: { type: 'integer' },
      },
      required: ['city', 'unit', 'days'],
    },
  },
};
// What the mock derives from WEATHER_TOOL's schema.
const WEATHER_ARGS = { city: 'mock', unit: 'celsius', days: 1 };

describe('opengateway through the openai npm package', () => {
  let workdir;
  let mock;
  let gateway;
  let client;

  before(async () => {
    workdir = mkdtempSync(path.join(tmpdir(), 'ogw-node-'));
    const started = [];
    try {
      const m = startService('opengateway-mock', ['--listen', '127.0.0.1:0'], workdir);
      started.push(m.service);
      mock = await m.ready;
      const config = path.join(workdir, 'gateway.yaml');
      writeFileSync(
        config,
        [
          'providers:',
          `  mock: { type: openai, api_base: "${mock.url}/v1", api_key: "test-key" }`,
          'models:',
          '  - name: smart',
          '    targets: [mock/mock-gpt]',
          'router: { retries: 0 }',
          `server: { listen: "127.0.0.1:0", database: "sqlite://${path.join(workdir, 'gw.db')}", auth: none, max_body_bytes: 65536 }`,
          '',
        ].join('\n'),
      );
      const g = startService(
        'opengateway',
        ['serve', '--config', config, '--listen', '127.0.0.1:0'],
        workdir,
      );
      started.push(g.service);
      gateway = await g.ready;
    } catch (err) {
      await Promise.all(started.map(stopService));
      throw err;
    }
    client = new OpenAI({
      baseURL: `${gateway.url}/v1`,
      apiKey: 'unused',
      maxRetries: 0,
      timeout: 30_000,
    });
  });

  after(async () => {
    await stopService(gateway);
    await stopService(mock);
    if (workdir) rmSync(workdir, { recursive: true, force: true });
  });

  test('non-stream completion', { timeout: 30_000 }, async () => {
    const { data, response } = await client.chat.completions
      .create({ model: 'mock/mock-gpt', messages: MESSAGES })
      .withResponse();
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-opengateway-provider'), 'mock');
    assert.equal(response.headers.get('x-opengateway-model'), 'mock-gpt');
    assert.equal(data.object, 'chat.completion');
    assert.equal(data.choices.length, 1);
    assert.equal(data.choices[0].finish_reason, 'stop');
    assert.equal(data.choices[0].message.role, 'assistant');
    assert.equal(data.choices[0].message.content, 'Hello from the mock provider! You said: Hello gateway');
    assert.equal(data.provider, 'mock');
    assert.equal(data.usage.cost, 0);
    assert.equal(data.usage.prompt_tokens, 7);
    assert.equal(data.usage.completion_tokens, 9);
    assert.equal(data.usage.total_tokens, 16);
  });

  test('stream of text with include_usage', { timeout: 30_000 }, async () => {
    const text = 'The quick brown fox jumps over the lazy dog';
    const stream = await client.chat.completions.create({
      model: 'mock/mock-gpt',
      messages: MESSAGES,
      stream: true,
      stream_options: { include_usage: true },
      mock: { content: text },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);

    const pieces = chunks.flatMap((c) => (c.choices[0]?.delta?.content ? [c.choices[0].delta.content] : []));
    assert.ok(pieces.length > 1, 'the mock streams one word per chunk');
    assert.equal(pieces.join(''), text);
    const finishes = chunks.flatMap((c) => (c.choices[0]?.finish_reason ? [c.choices[0].finish_reason] : []));
    assert.deepEqual(finishes, ['stop']);

    const usageChunks = chunks.filter((c) => c.usage);
    assert.equal(usageChunks.length, 1);
    assert.equal(usageChunks[0], chunks.at(-1));
    assert.deepEqual(usageChunks[0].choices, []);
    assert.equal(usageChunks[0].usage.completion_tokens, text.split(' ').length);
    assert.ok(usageChunks[0].usage.prompt_tokens > 0);
    assert.equal(usageChunks[0].usage.cost, 0);
  });

  test('stream with a tool call', { timeout: 30_000 }, async () => {
    const stream = await client.chat.completions.create({
      model: 'mock/mock-gpt',
      messages: [{ role: 'user', content: "What's the weather in Paris?" }],
      tools: [WEATHER_TOOL],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);

    const deltas = chunks.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? []);
    assert.ok(deltas.length >= 3, JSON.stringify(deltas));
    assert.equal(deltas[0].index, 0);
    assert.equal(deltas[0].type, 'function');
    assert.match(deltas[0].id, /^call_/);
    assert.equal(deltas[0].function.name, 'get_weather');
    for (const d of deltas.slice(1)) {
      assert.equal(d.index, 0);
      assert.equal(d.id, undefined);
      assert.equal(d.function.name, undefined);
    }
    const parts = deltas.map((d) => d.function.arguments).filter(Boolean);
    assert.ok(parts.length >= 2, 'arguments should arrive in several deltas');
    assert.deepEqual(JSON.parse(parts.join('')), WEATHER_ARGS);

    const finishes = chunks.flatMap((c) => (c.choices[0]?.finish_reason ? [c.choices[0].finish_reason] : []));
    assert.deepEqual(finishes, ['tool_calls']);
    const usageChunks = chunks.filter((c) => c.usage);
    assert.equal(usageChunks.length, 1);
    assert.ok(usageChunks[0].usage.completion_tokens > 0);
  });

  test('unknown model raises NotFoundError', { timeout: 30_000 }, async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'nope/does-not-exist', messages: MESSAGES }),
      (err) => {
        assert.ok(err instanceof OpenAI.NotFoundError, `got ${err?.constructor?.name}: ${err}`);
        assert.equal(err.status, 404);
        assert.equal(err.code, 'model_not_found');
        assert.equal(err.param, 'model');
        assert.equal(err.type, 'invalid_request_error');
        return true;
      },
    );
  });

  test('upstream 429 raises RateLimitError', { timeout: 30_000 }, async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'mock/mock-gpt', messages: MESSAGES, mock: { status: 429 } }),
      (err) => {
        assert.ok(err instanceof OpenAI.RateLimitError, `got ${err?.constructor?.name}: ${err}`);
        assert.equal(err.status, 429);
        assert.equal(err.code, 'rate_limit_exceeded');
        assert.equal(err.headers.get('x-opengateway-provider'), 'mock');
        return true;
      },
    );
  });

  test('an error after the stream started raises APIError', { timeout: 30_000 }, async () => {
    const stream = await client.chat.completions.create({
      model: 'mock/mock-gpt',
      messages: MESSAGES,
      stream: true,
      mock: { stream_error: { message: 'boom', type: 'server_error' } },
    });
    const received = [];
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) {
          if (chunk.choices[0]?.delta?.content) received.push(chunk.choices[0].delta.content);
        }
      })(),
      (err) => {
        assert.ok(err instanceof OpenAI.APIError, `got ${err?.constructor?.name}: ${err}`);
        assert.match(err.message, /boom/);
        return true;
      },
    );
    assert.deepEqual(received, ['Hello ']);
  });

  test('invalid JSON is a 400 with an OpenAI error body', { timeout: 30_000 }, async () => {
    const response = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"model": "mock/mock-gpt", "messages": [',
      signal: AbortSignal.timeout(30_000),
    });
    assert.equal(response.status, 400);
    assert.match(response.headers.get('content-type'), /^application\/json/);
    const body = await response.json();
    assert.deepEqual(Object.keys(body), ['error']);
    assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
    assert.equal(body.error.type, 'invalid_request_error');
    assert.match(body.error.message, /JSON/);
  });

  test('embeddings: the SDK default (base64) decodes to the float form', { timeout: 30_000 }, async () => {
    const input = ['alpha beta', 'gamma'];
    // The npm package asks for base64 and decodes it to numbers itself.
    const decoded = await client.embeddings.create({ model: 'mock/text-embedding-3-small', input, dimensions: 12 });
    const plain = await client.embeddings.create({
      model: 'mock/text-embedding-3-small',
      input,
      dimensions: 12,
      encoding_format: 'float',
    });
    assert.equal(decoded.object, 'list');
    assert.equal(decoded.data.length, 2);
    for (let i = 0; i < 2; i++) {
      assert.equal(decoded.data[i].index, i);
      assert.equal(decoded.data[i].embedding.length, 12);
      decoded.data[i].embedding.forEach((v, j) => assert.ok(Math.abs(v - plain.data[i].embedding[j]) < 1e-7));
    }
    assert.equal(decoded.usage.prompt_tokens, 5);
    assert.equal(decoded.usage.total_tokens, 5);
    assert.equal(decoded.provider, 'mock');
    assert.equal(typeof decoded.usage.cost, 'number');

    await assert.rejects(
      client.embeddings.create({ model: 'mock/text-embedding-3-small', input: ['ok', ''] }),
      (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'input[1]',
    );
  });

  test('the gateway still answers after the errors', { timeout: 30_000 }, async () => {
    assert.equal(gateway.child.exitCode, null);
    const data = await client.chat.completions.create({
      model: 'smart',
      messages: MESSAGES,
      mock: { content: 'still here' },
    });
    assert.equal(data.choices[0].message.content, 'still here');
  });
});
