// Starting and stopping the mock provider and the gateway for the Node e2e tests: binaries
// from $OGW_BIN_DIR (default <repo>/target/debug), ports read from their first stdout line,
// everything on 127.0.0.1.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN_DIR = process.env.OGW_BIN_DIR || path.join(REPO_ROOT, 'target', 'debug');
const STARTUP_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

/** No proxies and no real provider keys for the children. */
export function childEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/(_API_KEY|_API_BASE|_PROXY)$/i.test(k)) env[k] = v;
  }
  return env;
}

/** Starts a binary and resolves with its `http://127.0.0.1:PORT` from the first stdout line. */
export function startService(name, args, cwd) {
  const bin = path.join(BIN_DIR, name);
  if (!existsSync(bin)) {
    throw new Error(`${bin} does not exist: run \`cargo build --bins\` or set OGW_BIN_DIR`);
  }
  const child = spawn(bin, args, { cwd, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const log = [];
  const remember = (prefix) => (data) => {
    for (const line of data.toString('utf8').split('\n')) {
      if (line) log.push(prefix + line);
    }
    if (log.length > 400) log.splice(0, log.length - 400);
  };
  // Keep draining both pipes for the whole run so they never fill.
  child.stderr.on('data', remember('err| '));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const service = { name, child, log, exited, url: null };

  const ready = new Promise((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(
      () => reject(new Error(`${name} printed no address within ${STARTUP_TIMEOUT_MS} ms\n${log.join('\n')}`)),
      STARTUP_TIMEOUT_MS,
    );
    child.stdout.on('data', (data) => {
      remember('out| ')(data);
      if (service.url !== null) return;
      buffered += data.toString('utf8');
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      clearTimeout(timer);
      const first = buffered.slice(0, newline);
      const match = first.match(/http:\/\/\S+/);
      if (!match) {
        reject(new Error(`${name} did not announce its address: ${JSON.stringify(first)}`));
        return;
      }
      service.url = match[0].replace(/\/$/, '');
      resolve(service);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited early (code ${code}, signal ${signal})\n${log.join('\n')}`));
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
  return { service, ready };
}

export async function stopService(service) {
  if (!service || service.child.exitCode !== null || service.child.signalCode !== null) return;
  service.child.kill('SIGTERM');
  let timer;
  const timedOut = new Promise((resolve) => {
    timer = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS);
  });
  const outcome = await Promise.race([service.exited, timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    service.child.kill('SIGKILL');
    await service.exited;
  }
}
