export {
  BlockedAddressError,
  HttpTimeoutError,
  policyLookup,
  assertAllowedUrl,
  safeRequest,
  readText,
} from './safe-http';
export type { SafeRequest, SafeResponse } from './safe-http';
