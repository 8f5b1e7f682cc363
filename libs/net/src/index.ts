export {
  BlockedAddressError,
  HttpTimeoutError,
  policyLookup,
  assertAllowedUrl,
  safeRequest,
  readText,
  systemResolver,
} from './safe-http';
export type { SafeRequest, SafeResponse, HostResolver } from './safe-http';
