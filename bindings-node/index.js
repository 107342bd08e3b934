'use strict'

// Public CommonJS entry point (index.mjs re-exports it for ES modules). The native functions
// come from `native.cjs`, which `npm run build` (napi build) generates together with
// `native.d.ts`; never edit those by hand. Types of everything here are in index.d.ts.
//
// The division of work: requests go to Rust as JSON text and answers come back as JSON text
// (JSON.stringify / JSON.parse are the fastest way across Node-API for nested objects), every
// native rejection carries a JSON payload that `toError` maps to a class, and streams are
// read in batches of ready chunks. Routing, translation, accounting all live in the core.

const native = require('./native.cjs')

// ------------------------------------------------------------------------------------ errors

/** Base class of every error the gateway raises for a failed request (as in the `openai` package). */
class APIError extends Error {
  /**
   * @param {number | undefined} status HTTP status the request failed with.
   * @param {object | undefined} error The OpenAI error body object (`{message, type, param, code}`).
   * @param {string | undefined} message Message; defaults to `error.message`.
   * @param {object} [extra] `provider`, `attempts`, `kind`, `retryAfterMs`.
   */
  constructor(status, error, message, extra = {}) {
    super(message ?? error?.message ?? 'Unknown error')
    this.name = new.target.name
    /** HTTP status (the provider's own for upstream errors). */
    this.status = status
    /** The OpenAI error body object. */
    this.error = error
    /** OpenAI's `error.code`. */
    this.code = error?.code ?? null
    /** OpenAI's `error.type`. */
    this.type = error?.type ?? null
    /** The request parameter at fault, when known. */
    this.param = error?.param ?? null
    /** The provider id the error came from, when it came from one. */
    this.provider = extra.provider ?? null
    /** Every attempt the router made, in order. */
    this.attempts = extra.attempts ?? []
    /** The core's error kind (`rate_limit`, `timeout`, ...). */
    this.kind = extra.kind ?? null
    /** How long the provider asked callers to wait, in ms, when it said. */
    this.retryAfterMs = extra.retryAfterMs ?? null
  }
}
/** 400: the request is invalid (`param` names the field at fault). */
class BadRequestError extends APIError {}
/** 401: the provider refused the credentials. */
class AuthenticationError extends APIError {}
/** 403: the credentials may not do this. */
class PermissionDeniedError extends APIError {}
/** 404: no such model (or resource). */
class NotFoundError extends APIError {}
/** 409: conflicting state upstream. */
class ConflictError extends APIError {}
/** 422: well-formed but cannot be processed. */
class UnprocessableEntityError extends APIError {}
/** 429: a rate limit or quota was hit. */
class RateLimitError extends APIError {}
/** 429 with `type: "budget_exceeded"`: a spending cap of the gateway was reached. */
class BudgetExceededError extends RateLimitError {}
/** 5xx: the provider or the gateway failed. */
class InternalServerError extends APIError {}
/** The provider could not be reached or sent something unreadable (502). */
class APIConnectionError extends APIError {}
/** The provider did not answer in time (504). */
class APITimeoutError extends APIConnectionError {}
/** The caller aborted the request (an `AbortSignal`, or `abort()` on a stream). */
class APIUserAbortError extends APIError {
  /** @param {string} [message] */
  constructor(message = 'Request was aborted.') {
    super(undefined, undefined, message)
  }
}

/** The one place a failure becomes an error class: by core kind first, then by status. */
function toError(e) {
  const text = e && typeof e.message === 'string' ? e.message : ''
  if (!text.startsWith('{"opengateway_error"')) return e
  let p
  try {
    p = JSON.parse(text)
  } catch {
    return e
  }
  if (p.kind === 'aborted') return new APIUserAbortError()
  const extra = { provider: p.provider, attempts: p.attempts, kind: p.kind, retryAfterMs: p.retry_after_ms }
  const args = [p.status, p.error, p.error?.message, extra]
  if (p.kind === 'timeout') return new APITimeoutError(...args)
  if (p.kind === 'connection') return new APIConnectionError(...args)
  switch (p.status) {
    case 400: return new BadRequestError(...args)
    case 401: return new AuthenticationError(...args)
    case 403: return new PermissionDeniedError(...args)
    case 404: return new NotFoundError(...args)
    case 409: return new ConflictError(...args)
    case 422: return new UnprocessableEntityError(...args)
    case 429:
      return p.error?.type === 'budget_exceeded' ? new BudgetExceededError(...args) : new RateLimitError(...args)
    default:
      return p.status >= 500 ? new InternalServerError(...args) : new APIError(...args)
  }
}

// ------------------------------------------------------------------------------------ calls

/**
 * Splits the call options (`signal`, `tags`, `timeout`) from the request body, which goes
 * upstream. Returns `[bodyText, tags, cancelToken, signal]`.
 */
function prepare(params) {
  const { signal, tags, timeout, ...body } = params
  if (timeout !== undefined && body.timeout_ms === undefined) body.timeout_ms = timeout
  let token = null
  if (signal) {
    if (signal.aborted) throw new APIUserAbortError()
    token = new native.CancelToken()
  }
  return [JSON.stringify(body), Array.isArray(tags) ? tags : tags ? [tags] : null, token, signal]
}

/** Trips `token` when `signal` aborts, for as long as `promise` is pending. */
async function guarded(promise, token, signal) {
  if (!token) return promise
  const onAbort = () => token.cancel()
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    return await promise
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

/** The answer object with the routing record attached as non-enumerable properties. */
function unwrap(text) {
  const { route, request_id: requestId, response } = JSON.parse(text)
  Object.defineProperty(response, 'route', { value: route, enumerable: false, writable: true, configurable: true })
  Object.defineProperty(response, 'requestId', { value: requestId, enumerable: false, writable: true, configurable: true })
  return response
}

/** A streamed answer: an async iterable of chunk objects (OpenAI chunks or Anthropic events). */
class Stream {
  /**
   * @param {object} nativeStream The addon's stream.
   * @param {AbortSignal | undefined} signal Aborts the stream too.
   */
  constructor(nativeStream, signal) {
    this._native = nativeStream
    this._signal = signal
    this._onAbort = signal ? () => nativeStream.close() : null
    if (signal) {
      if (signal.aborted) nativeStream.close()
      else signal.addEventListener('abort', this._onAbort, { once: true })
    }
    /** Where the stream is served from: `{provider, model, attempts}`. */
    this.route = JSON.parse(nativeStream.route)
    /** The id of the request's usage record. */
    this.requestId = nativeStream.requestId
  }

  /** Stops the stream and the upstream request (the ledger records it `cancelled`). */
  abort() {
    this._native.close()
  }

  /** Iterates the chunks; leaving the loop early (`break`, `return`, a throw) aborts upstream. */
  async *[Symbol.asyncIterator]() {
    try {
      for (;;) {
        let batch
        try {
          batch = await this._native.next()
        } catch (e) {
          throw toError(e)
        }
        if (batch === null) return
        yield* JSON.parse(batch)
      }
    } finally {
      this._native.close()
      if (this._onAbort) this._signal.removeEventListener('abort', this._onAbort)
    }
  }
}

/** Resolves `since`/`until` given as a Date, an ISO string or Unix milliseconds to milliseconds. */
function toMs(t, param) {
  if (t === undefined || t === null) return undefined
  if (t instanceof Date) return t.getTime()
  if (typeof t === 'string') {
    const ms = Date.parse(t)
    if (Number.isNaN(ms)) throw new BadRequestError(400, { message: `\`${param}\` is not a date: ${t}`, type: 'invalid_request_error', param, code: null })
    return ms
  }
  return t
}

/** The core's `UsageFilter` (snake_case) from the JS-style options. */
function usageFilter({ since, until, key, user, model, provider, tag, status } = {}) {
  const f = { since_ms: toMs(since, 'since'), until_ms: toMs(until, 'until'), key, user, model, provider, tag, status }
  for (const k of Object.keys(f)) if (f[k] === undefined) delete f[k]
  return f
}

/** The in-process gateway: OpenAI-shaped calls routed to any configured provider. */
class Gateway {
  /**
   * @param {string | object} [config] A YAML file path, or the config as an object; without
   *   one, every provider whose key variable is set (`OPENAI_API_KEY`, ...) is usable.
   */
  constructor(config) {
    try {
      this._native =
        typeof config === 'string'
          ? new native.NativeGateway(null, config)
          : new native.NativeGateway(config === undefined || config === null ? null : JSON.stringify(config), null)
    } catch (e) {
      throw toError(e)
    }
    const n = this._native
    /** OpenAI Chat Completions. */
    this.chat = {
      completions: {
        /** Creates a chat completion (an async iterable of chunks with `stream: true`). */
        create: async (params) => {
          const [body, tags, token, signal] = prepare(params)
          try {
            if (params.stream) return new Stream(await guarded(n.chatStream(body, tags, token), token, signal), signal)
            return unwrap(await guarded(n.chat(body, tags, token), token, signal))
          } catch (e) {
            throw toError(e)
          }
        },
      },
    }
    /** The Anthropic Messages API, served by any provider. */
    this.messages = {
      /** Creates a message (an async iterable of Anthropic events with `stream: true`). */
      create: async (params) => {
        const [body, tags, token, signal] = prepare(params)
        try {
          if (params.stream) return new Stream(await guarded(n.messagesStream(body, tags, token), token, signal), signal)
          return unwrap(await guarded(n.messages(body, tags, token), token, signal))
        } catch (e) {
          throw toError(e)
        }
      },
    }
    /** OpenAI embeddings, served by any embeddings provider. */
    this.embeddings = {
      /** Creates embeddings, in the `encoding_format` asked (`float` by default). */
      create: async (params) => {
        const [body, tags, token, signal] = prepare(params)
        try {
          return unwrap(await guarded(n.embeddings(body, tags, token), token, signal))
        } catch (e) {
          throw toError(e)
        }
      },
    }
  }

  /** Ledger totals grouped `by` some dimensions and filtered (`since`, `until`, `model`, ...). */
  async usage(options = {}) {
    const { by, ...rest } = options
    const query = { group_by: by === undefined ? [] : Array.isArray(by) ? by : [by], ...usageFilter(rest) }
    try {
      return JSON.parse(await this._native.usage(JSON.stringify(query)))
    } catch (e) {
      throw toError(e)
    }
  }

  /** Ledger records, newest first, at most `limit` (default 100), filtered like `usage`. */
  async usageRecords(options = {}) {
    const { limit = 100, ...rest } = options
    try {
      return JSON.parse(await this._native.usageRecords(JSON.stringify(usageFilter(rest)), limit))
    } catch (e) {
      throw toError(e)
    }
  }

  /**
   * Calls `fn` with the usage record of every request once it has ended. It runs on the event
   * loop after the response (never delaying it); a throwing `fn` becomes a process warning.
   */
  onRequestEnd(fn) {
    if (typeof fn !== 'function') throw new TypeError('onRequestEnd expects a function')
    this._native.onRequestEnd((text) => {
      try {
        fn(JSON.parse(text))
      } catch (e) {
        process.emitWarning(`opengateway onRequestEnd hook threw: ${e && e.stack ? e.stack : e}`)
      }
    })
  }

  /** Resolves once every record so far is written to the ledger's store. */
  async flush() {
    await this._native.flush()
  }
}

module.exports = {
  Gateway,
  Stream,
  APIError,
  BadRequestError,
  AuthenticationError,
  PermissionDeniedError,
  NotFoundError,
  ConflictError,
  UnprocessableEntityError,
  RateLimitError,
  BudgetExceededError,
  InternalServerError,
  APIConnectionError,
  APITimeoutError,
  APIUserAbortError,
  /** Returns the version of this package (the workspace version, shared with the Rust core). */
  version: native.version,
}
module.exports.default = Gateway
