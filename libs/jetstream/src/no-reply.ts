/** Returned by a `@RpcHandler` method to send no reply at all (e.g. a standby scheduler). */
export const NO_REPLY = Symbol('gantry.no-reply');
