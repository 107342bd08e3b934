// Public ES module entry point: the same objects as the CommonJS one (index.js), so `instanceof`
// checks agree whichever way a program loads the package.
import cjs from './index.js'

export const {
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
  version,
} = cjs
export default cjs.Gateway
