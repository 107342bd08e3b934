// API keys (`server.auth: keys`) through the official `openai` npm package: a key made with the
// real `opengateway keys` CLI works as the SDK's apiKey; a forged one, or one revoked with the
// CLI, is a 401 AuthenticationError; a spent requests-per-minute limit is a 429 RateLimitError
// carrying OpenAI's `x-ratelimit-*` headers.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import OpenAI from 'openai';

import { BIN_DIR, childEnv, startService, stopService } from './harness.mjs';

const MESSAGES = [{ role: 'user', content: 'Hello gateway' }];

describe('API keys through the openai npm package', () => {
  let workdir;
  let config;
  let mock;
  let gateway;

  before(async () => {
    workdir = mkdtempSync(path.join(tmpdir(), 'ogw-node-keys-'));
    const started = [];
    try {
      const m = startService('opengateway-mock', ['--listen', '127.0.0.1:0'], workdir);
      started.push(m.service);
      mock = await m.ready;
      config = path.join(workdir, 'gateway.yaml');
      writeFileSync(
        config,
        [
          'providers:',
          `  mock: { type: openai, api_base: "${mock.url}/v1", api_key: "test-key" }`,
          'router: { retries: 0 }',
          `server: { listen: "127.0.0.1:0", database: "sqlite://${path.join(workdir, 'gw.db')}", auth: keys }`,
          '',
        ].join('\n'),
      );
      const g = startService('opengateway', ['serve', '--config', config, '--listen', '127.0.0.1:0'], workdir);
      started.push(g.service);
      gateway = await g.ready;
    } catch (err) {
      await Promise.all(started.map(stopService));
      throw err;
    }
  });

  after(async () => {
    await stopService(gateway);
    await stopService(mock);
    if (workdir) rmSync(workdir, { recursive: true, force: true });
  });

  const client = (apiKey) =>
    new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey, maxRetries: 0, timeout: 30_000 });

  /** `opengateway keys ARGS --config CONFIG`, asserted to succeed; its stdout. */
  const keysCli = (...args) => {
    const done = spawnSync(path.join(BIN_DIR, 'opengateway'), ['keys', ...args, '--config', config], {
      env: childEnv(),
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(done.status, 0, done.stderr);
    return done.stdout;
  };
  const createKey = (name, ...flags) => JSON.parse(keysCli('create', '--json', '--name', name, ...flags));

  test('a key from the CLI works; a forged one is a 401', { timeout: 30_000 }, async () => {
    const { secret } = createKey('node');
    assert.match(secret, /^ogw_/);

    const data = await client(secret).chat.completions.create({
      model: 'mock/mock-gpt',
      messages: MESSAGES,
      mock: { content: 'keyed' },
    });
    assert.equal(data.choices[0].message.content, 'keyed');

    const forged = `ogw_${'B'.repeat(43)}`;
    await assert.rejects(
      client(forged).chat.completions.create({ model: 'mock/mock-gpt', messages: MESSAGES }),
      (err) => {
        assert.ok(err instanceof OpenAI.AuthenticationError, String(err));
        assert.equal(err.status, 401);
        assert.equal(err.code, 'invalid_api_key');
        assert.ok(!err.message.includes(forged));
        return true;
      },
    );
  });

  test('a key revoked with the CLI is a 401 on the next request', { timeout: 30_000 }, async () => {
    const { id, secret } = createKey('node-revoked');
    const sdk = client(secret);
    const data = await sdk.chat.completions.create({ model: 'mock/mock-gpt', messages: MESSAGES });
    assert.ok(data.choices[0].message.content);

    keysCli('revoke', id);
    await assert.rejects(sdk.chat.completions.create({ model: 'mock/mock-gpt', messages: MESSAGES }), (err) => {
      assert.ok(err instanceof OpenAI.AuthenticationError, String(err));
      assert.equal(err.status, 401);
      assert.equal(err.code, 'invalid_api_key');
      assert.match(err.message, /revoked/);
      assert.ok(!err.message.includes(secret));
      return true;
    });
    const row = JSON.parse(keysCli('list', '--json')).find((k) => k.id === id);
    assert.equal(row.revoked, true);
    assert.equal(row.requests, 1);
  });

  test('a spent RPM limit is a RateLimitError with x-ratelimit headers', { timeout: 30_000 }, async () => {
    const { secret } = createKey('node-rpm', '--rpm', '2');
    const sdk = client(secret);
    for (const remaining of ['1', '0']) {
      const { response } = await sdk.chat.completions
        .create({ model: 'mock/mock-gpt', messages: MESSAGES })
        .withResponse();
      assert.equal(response.headers.get('x-ratelimit-limit-requests'), '2');
      assert.equal(response.headers.get('x-ratelimit-remaining-requests'), remaining);
      assert.match(response.headers.get('x-ratelimit-reset-requests'), /s$/);
    }
    await assert.rejects(sdk.chat.completions.create({ model: 'mock/mock-gpt', messages: MESSAGES }), (err) => {
      assert.ok(err instanceof OpenAI.RateLimitError, String(err));
      assert.equal(err.status, 429);
      assert.equal(err.code, 'rate_limit_exceeded');
      assert.match(err.message, /requests per min \(RPM\)/);
      assert.equal(err.headers.get('x-ratelimit-limit-requests'), '2');
      assert.equal(err.headers.get('x-ratelimit-remaining-requests'), '0');
      assert.match(err.headers.get('x-ratelimit-reset-requests'), /s$/);
      const retryAfter = Number(err.headers.get('retry-after'));
      assert.ok(retryAfter >= 1 && retryAfter <= 60, String(retryAfter));
      return true;
    });
  });
});
