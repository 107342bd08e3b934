// Types of the public entry points (index.js, index.mjs), written by hand. The addon's own
// declarations are generated into native.d.ts by `npm run build` and are not public API.

/** Returns the version of this package (the workspace version, shared with the Rust core). */
export declare function version(): string

// ------------------------------------------------------------------------------- requests

/** A JSON object passed through as it is. */
export type JsonObject = { [key: string]: unknown }

/** One part of a multi-part message content. */
export type ContentPart =
  | { type: 'text'; text: string; [key: string]: unknown }
  | { type: 'image_url'; image_url: { url: string; detail?: 'auto' | 'low' | 'high' }; [key: string]: unknown }
  | { type: 'input_audio'; input_audio: { data: string; format: string }; [key: string]: unknown }
  | { type: 'file'; file: { file_data?: string; file_id?: string; filename?: string }; [key: string]: unknown }

/** A tool call the assistant made. */
export interface ToolCall {
  id: string
  type: 'function'
  function: { name: string; arguments: string }
}

/** One message of a conversation, in the OpenAI shape. */
export type ChatMessage =
  | { role: 'system' | 'developer'; content: string | ContentPart[]; name?: string }
  | { role: 'user'; content: string | ContentPart[]; name?: string }
  | {
      role: 'assistant'
      content?: string | ContentPart[] | null
      name?: string
      tool_calls?: ToolCall[]
      refusal?: string | null
      reasoning_content?: string
    }
  | { role: 'tool'; content: string | ContentPart[]; tool_call_id: string }

/** A function tool the model may call. */
export interface Tool {
  type: 'function'
  function: { name: string; description?: string; parameters?: JsonObject; strict?: boolean }
}

/** Which tool the model must (or must not) call. */
export type ToolChoice = 'none' | 'auto' | 'required' | { type: 'function'; function: { name: string } }

/** The answer's format: text, any JSON object, or JSON matching a schema. */
export type ResponseFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | { type: 'json_schema'; json_schema: { name: string; schema?: JsonObject; strict?: boolean; description?: string } }

/** Options of one call that are not sent upstream. */
export interface CallOptions {
  /** Aborts the call (and the upstream request); rejects with `APIUserAbortError`. */
  signal?: AbortSignal
  /** Labels recorded in the usage ledger (`usage({ by: 'tag' })`), added to `metadata.tags`. */
  tags?: string[] | string
  /** Timeout of each attempt in milliseconds (sent to the core as `timeout_ms`). */
  timeout?: number
}

/** The parameters of `chat.completions.create`: every OpenAI parameter plus opengateway's. */
export interface ChatCompletionCreateParamsBase extends CallOptions {
  /** `provider/model` or an alias from the config. */
  model: string
  messages: ChatMessage[]
  /** Models to try, in order, when `model` fails (opengateway; `fallbacks` is a synonym). */
  models?: string[]
  fallbacks?: string[]
  temperature?: number | null
  top_p?: number | null
  n?: number | null
  stream_options?: { include_usage?: boolean } | null
  stop?: string | string[] | null
  max_tokens?: number | null
  max_completion_tokens?: number | null
  presence_penalty?: number | null
  frequency_penalty?: number | null
  logit_bias?: Record<string, number> | null
  logprobs?: boolean | null
  top_logprobs?: number | null
  seed?: number | null
  tools?: Tool[]
  tool_choice?: ToolChoice
  parallel_tool_calls?: boolean
  response_format?: ResponseFormat
  reasoning_effort?: 'minimal' | 'low' | 'medium' | 'high' | 'xhigh' | (string & {})
  user?: string
  metadata?: Record<string, unknown>
  /** Sticky routing key for aliases with `sticky` (opengateway). */
  session_id?: string
  /** Per-attempt timeout in ms (opengateway); `timeout` sets it too. */
  timeout_ms?: number
  /** Time-to-first-token timeout of a stream in ms (opengateway). */
  ttft_timeout_ms?: number
  /** Any other field is passed through to the provider. */
  [key: string]: unknown
}

/** Non-streaming chat parameters. */
export interface ChatCompletionCreateParamsNonStreaming extends ChatCompletionCreateParamsBase {
  stream?: false | null
}

/** Streaming chat parameters. */
export interface ChatCompletionCreateParamsStreaming extends ChatCompletionCreateParamsBase {
  stream: true
}

// ------------------------------------------------------------------------------ responses

/** Token counts in OpenAI's meaning, plus the cost in USD (opengateway). */
export interface CompletionUsage {
  prompt_tokens: number
  completion_tokens: number
  total_tokens: number
  prompt_tokens_details?: { cached_tokens?: number; cache_write_tokens?: number; audio_tokens?: number }
  completion_tokens_details?: {
    reasoning_tokens?: number
    audio_tokens?: number
    accepted_prediction_tokens?: number
    rejected_prediction_tokens?: number
  }
  /** The request's cost in USD, from the pricing catalog. */
  cost?: number
}

/** One try of one target. */
export interface Attempt {
  provider: string
  model: string
  /** HTTP status the provider answered with, if it answered. */
  status: number | null
  /** `null` when the attempt succeeded; else the error's OpenAI type. */
  error_type: string | null
  error_message: string | null
  latency_ms: number
}

/** Where a request was served and every attempt made on the way. */
export interface Route {
  provider: string
  model: string
  /** Failed attempts first, the successful one last. */
  attempts: Attempt[]
  /** Targets left out because their circuit was open (`provider/model`). */
  skipped?: string[]
}

/** What every answer carries besides its wire shape, as non-enumerable properties (so
 * `JSON.stringify(answer)` is exactly the provider-neutral wire shape). */
export interface Routed {
  /** Where the request was served and every attempt made on the way. */
  readonly route: Route
  /** The id of the request's usage record (`req_…`). */
  readonly requestId: string
}

/** The assistant's message. */
export interface ChatCompletionMessage {
  role: 'assistant'
  content: string | null
  refusal?: string | null
  tool_calls?: ToolCall[]
  reasoning_content?: string
  annotations?: unknown[]
  [key: string]: unknown
}

/** A chat completion in the OpenAI shape, plus `provider` and `usage.cost`. */
export interface ChatCompletion extends Routed {
  id: string
  object: 'chat.completion'
  created: number
  model: string
  choices: Array<{
    index: number
    message: ChatCompletionMessage
    finish_reason: 'stop' | 'length' | 'tool_calls' | 'content_filter' | null
    logprobs: unknown | null
  }>
  usage?: CompletionUsage
  system_fingerprint?: string
  service_tier?: string | null
  /** The provider id that served the request. */
  provider: string
  [key: string]: unknown
}

/** One chunk of a streamed chat completion. */
export interface ChatCompletionChunk {
  id: string
  object: 'chat.completion.chunk'
  created: number
  model: string
  choices: Array<{
    index: number
    delta: {
      role?: 'assistant'
      content?: string | null
      refusal?: string | null
      reasoning_content?: string
      tool_calls?: Array<{ index: number; id?: string; type?: 'function'; function?: { name?: string; arguments?: string } }>
    }
    finish_reason: 'stop' | 'length' | 'tool_calls' | 'content_filter' | null
    logprobs?: unknown | null
  }>
  /** Only on the last chunk, when `stream_options.include_usage` was asked. */
  usage?: CompletionUsage | null
  provider: string
  [key: string]: unknown
}

/** A streamed answer: iterate it with `for await`; leaving the loop early aborts upstream. */
export declare class Stream<T> implements AsyncIterable<T> {
  private constructor()
  /** Where the stream is served from and the attempts made before it started. */
  readonly route: Route
  /** The id of the request's usage record. */
  readonly requestId: string
  /** Stops the stream and the upstream request (recorded as `cancelled`). */
  abort(): void
  [Symbol.asyncIterator](): AsyncIterator<T>
}

// ------------------------------------------------------------------------------ anthropic

/** Parameters of `messages.create`: the Anthropic Messages request (any provider serves it). */
export interface MessageCreateParamsBase extends CallOptions {
  model: string
  max_tokens: number
  messages: Array<{ role: 'user' | 'assistant'; content: string | Array<{ type: string; [key: string]: unknown }> }>
  system?: string | Array<{ type: 'text'; text: string; [key: string]: unknown }>
  stop_sequences?: string[]
  temperature?: number
  top_p?: number
  top_k?: number
  tools?: Array<{ name: string; description?: string; input_schema: JsonObject; [key: string]: unknown }>
  tool_choice?: { type: 'auto' | 'any' | 'none' } | { type: 'tool'; name: string }
  thinking?: { type: 'enabled'; budget_tokens: number } | { type: 'disabled' } | { type: 'adaptive' }
  metadata?: { user_id?: string }
  /** Fallback models (opengateway). */
  models?: string[]
  [key: string]: unknown
}

/** A Messages response in the Anthropic shape, plus `provider` and `usage.cost`. */
export interface Message extends Routed {
  id: string
  type: 'message'
  role: 'assistant'
  model: string
  content: Array<
    | { type: 'text'; text: string; [key: string]: unknown }
    | { type: 'tool_use'; id: string; name: string; input: unknown }
    | { type: 'thinking'; thinking: string; signature: string }
    | { type: string; [key: string]: unknown }
  >
  stop_reason: 'end_turn' | 'max_tokens' | 'stop_sequence' | 'tool_use' | 'refusal' | null
  stop_sequence: string | null
  usage: {
    input_tokens: number
    output_tokens: number
    cache_creation_input_tokens?: number | null
    cache_read_input_tokens?: number | null
    cost?: number
    [key: string]: unknown
  }
  provider: string
  [key: string]: unknown
}

/** One event of a streamed Messages answer (`message_start`, `content_block_delta`, …). */
export interface MessageStreamEvent {
  type: string
  [key: string]: unknown
}

// ----------------------------------------------------------------------------- embeddings

/** `embeddings.create` parameters: OpenAI's, plus opengateway's fallbacks and call options. */
export interface EmbeddingCreateParams extends CallOptions {
  /** `provider/model` or an alias from the config. */
  model: string
  /** One text, several, token ids, or several token-id arrays. */
  input: string | string[] | number[] | number[][]
  /** `float` (default) or `base64` (little-endian f32), whatever the provider sends. */
  encoding_format?: 'float' | 'base64' | null
  /** Output dimensions, for models that can shorten their vectors. */
  dimensions?: number | null
  user?: string
  metadata?: Record<string, unknown>
  /** Models to try, in order, when `model` fails (opengateway; `fallbacks` is a synonym). */
  models?: string[]
  fallbacks?: string[]
  /** Per-attempt timeout in ms (opengateway); `timeout` sets it too. */
  timeout_ms?: number
  /** Any other field is passed through to the provider. */
  [key: string]: unknown
}

/** One embedding: a number array, or a base64 string when `encoding_format: 'base64'`. */
export interface Embedding {
  object: 'embedding'
  index: number
  embedding: number[] | string
  [key: string]: unknown
}

/** An embeddings answer (OpenAI `CreateEmbeddingResponse`) with opengateway's extensions. */
export interface CreateEmbeddingResponse extends Routed {
  object: 'list'
  data: Embedding[]
  model: string
  /** `cost` is opengateway's; Gemini's counts are the gateway's estimate. */
  usage: { prompt_tokens: number; total_tokens: number; cost?: number; [key: string]: unknown }
  provider: string
  [key: string]: unknown
}

// ---------------------------------------------------------------------------------- usage

/** A dimension to group ledger totals by. */
export type UsageGroupBy = 'model' | 'provider' | 'key' | 'user' | 'tag' | 'status' | 'hour' | 'day' | 'month'

/** How a request ended. */
export type RecordStatus = 'pending' | 'ok' | 'error' | 'cancelled' | 'interrupted'

/** Which records a ledger query covers; every field set must match. */
export interface UsageFilter {
  /** Started at or after (a Date, an ISO string, or Unix ms). */
  since?: Date | string | number
  /** Started before (a Date, an ISO string, or Unix ms). */
  until?: Date | string | number
  key?: string
  user?: string
  /** `provider/model`, or the model as asked (an alias). */
  model?: string
  provider?: string
  tag?: string
  status?: RecordStatus
}

/** One row of ledger totals (field names as in the core's ledger). */
export interface UsageTotals {
  /** The value of each grouped dimension (`null` where records have none). */
  group: Partial<Record<UsageGroupBy, string | null>>
  requests: number
  ok: number
  errors: number
  cancelled: number
  interrupted: number
  estimated: number
  prompt_tokens: number
  completion_tokens: number
  cached_tokens: number
  cache_write_tokens: number
  reasoning_tokens: number
  provider_cost_usd: number
  fee_usd: number
  total_cost_usd: number
}

/** One request as the usage ledger records it. */
export interface UsageRecord {
  id: string
  instance: string
  started_at_ms: number
  ended_at_ms: number | null
  /** `chat.completions`, `messages` or `embeddings`. */
  endpoint: string
  stream: boolean
  key: string | null
  user: string | null
  tags: string[]
  model: string
  provider: string | null
  provider_model: string | null
  status: RecordStatus
  http_status: number | null
  error_type: string | null
  error_message: string | null
  tokens: { prompt: number; completion: number; cached: number; cache_write: number; reasoning: number }
  /** The tokens (and cost) were counted locally. */
  estimated: boolean
  cost: { provider_usd: number; fee_usd: number; total_usd: number }
  latency_ms: number | null
  ttft_ms: number | null
  attempts: Attempt[]
}

// -------------------------------------------------------------------------------- gateway

/** The gateway configuration as an object (the same structure as `opengateway.yaml`). */
export interface GatewayConfig {
  providers?: Record<string, { type?: string; api_base?: string; api_key?: string; [key: string]: unknown }>
  models?: Array<{ name: string; targets: Array<string | JsonObject>; [key: string]: unknown }>
  router?: { retries?: number; timeout_ms?: number; cooldown_s?: number; [key: string]: unknown }
  [key: string]: unknown
}

/** The in-process gateway: OpenAI-shaped calls routed to any configured provider. */
export declare class Gateway {
  /**
   * @param config A YAML file path, or the config as an object; without one, every provider
   *   whose key variable is set (`OPENAI_API_KEY`, …) is usable as `type/model`.
   * @throws BadRequestError when the config is invalid.
   */
  constructor(config?: string | GatewayConfig)

  readonly chat: {
    readonly completions: {
      /** Creates a chat completion. */
      create(params: ChatCompletionCreateParamsNonStreaming): Promise<ChatCompletion>
      /** Streams a chat completion. */
      create(params: ChatCompletionCreateParamsStreaming): Promise<Stream<ChatCompletionChunk>>
      create(params: ChatCompletionCreateParamsBase & { stream?: boolean | null }): Promise<ChatCompletion | Stream<ChatCompletionChunk>>
    }
  }

  readonly messages: {
    /** Creates a message (Anthropic Messages shape). */
    create(params: MessageCreateParamsBase & { stream?: false | null }): Promise<Message>
    /** Streams a message as Anthropic events. */
    create(params: MessageCreateParamsBase & { stream: true }): Promise<Stream<MessageStreamEvent>>
  }

  readonly embeddings: {
    /** Creates embeddings (OpenAI shape), in the `encoding_format` asked. */
    create(params: EmbeddingCreateParams): Promise<CreateEmbeddingResponse>
  }

  /** Ledger totals grouped `by` some dimensions (none: one grand total) and filtered. */
  usage(options?: UsageFilter & { by?: UsageGroupBy | UsageGroupBy[] }): Promise<UsageTotals[]>

  /** Ledger records, newest first, at most `limit` (default 100). */
  usageRecords(options?: UsageFilter & { limit?: number }): Promise<UsageRecord[]>

  /** Calls `fn` with the record of every request once it has ended, off the response path. */
  onRequestEnd(fn: (record: UsageRecord) => void): void

  /** Resolves once every record so far is written to the ledger's store. */
  flush(): Promise<void>
}

export default Gateway

// --------------------------------------------------------------------------------- errors

/** The OpenAI error body object. */
export interface ErrorObject {
  message: string
  type: string | null
  param: string | null
  code: string | number | null
}

/** Base class of every error the gateway raises for a failed request. */
export declare class APIError extends Error {
  constructor(status: number | undefined, error: ErrorObject | undefined, message?: string, extra?: object)
  /** HTTP status (the provider's own for upstream errors); undefined for aborts. */
  readonly status: number | undefined
  /** The OpenAI error body object. */
  readonly error: ErrorObject | undefined
  readonly code: string | number | null
  readonly type: string | null
  /** The request parameter at fault, when known. */
  readonly param: string | null
  /** The provider id the error came from, when it came from one. */
  readonly provider: string | null
  /** Every attempt the router made, in order. */
  readonly attempts: Attempt[]
  /** The core's error kind (`rate_limit`, `timeout`, …). */
  readonly kind: string | null
  /** How long the provider asked callers to wait, in ms, when it said. */
  readonly retryAfterMs: number | null
}
/** 400: the request is invalid. */
export declare class BadRequestError extends APIError {}
/** 401: the provider refused the credentials. */
export declare class AuthenticationError extends APIError {}
/** 403: the credentials may not do this. */
export declare class PermissionDeniedError extends APIError {}
/** 404: no such model. */
export declare class NotFoundError extends APIError {}
/** 409: conflicting state upstream. */
export declare class ConflictError extends APIError {}
/** 422: well-formed but cannot be processed. */
export declare class UnprocessableEntityError extends APIError {}
/** 429: a rate limit or quota was hit. */
export declare class RateLimitError extends APIError {}
/** 429 with `type: "budget_exceeded"`: a spending cap was reached. */
export declare class BudgetExceededError extends RateLimitError {}
/** 5xx: the provider or the gateway failed. */
export declare class InternalServerError extends APIError {}
/** The provider could not be reached or sent something unreadable (502). */
export declare class APIConnectionError extends APIError {}
/** The provider did not answer in time (504). */
export declare class APITimeoutError extends APIConnectionError {}
/** The caller aborted the request. */
export declare class APIUserAbortError extends APIError {
  constructor(message?: string)
}
