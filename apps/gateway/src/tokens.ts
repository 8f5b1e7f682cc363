/** Injection tokens for the gateway's ports and shared objects. */
export const CLOCK = Symbol('CLOCK');
export const JOB_TYPES = Symbol('JOB_TYPES');
export const LOGGER = Symbol('LOGGER');
export const OUTPUT_STORE = Symbol('OUTPUT_STORE');
export const METRICS_REGISTRY = Symbol('METRICS_REGISTRY');
