/**
 * Integration harness for the gateway alone: a real nats-server and the gateway application in-process (the same
 * `startGateway` as `main.ts`), driven over real HTTP. The scheduler is absent unless a test plays its part on NATS.
 */
import { loadConfig } from '@gantry/config';
import { NatsHandle } from '@gantry/jetstream';
import { NatsServer } from '@gantry/testing';
import { createLogger, createRegistry } from '@gantry/telemetry';
import { startGateway, type Gateway } from '../src/gateway.app';
import { gatewayRefinements, gatewaySpec } from '../src/config';

export const ADMIN = 'int-admin-key-0001';
export const CLIENT = 'int-client-key-0001';
export const OTHER = 'int-other-key-0001';

export const logger = createLogger('gateway-test', (process.env['GANTRY_TEST_LOG'] as 'info' | undefined) ?? 'silent');

export function gatewayEnv(natsUrl: string, env: Record<string, string> = {}): Record<string, string> {
  return {
    NATS_URL: natsUrl,
    GATEWAY_PORT: '0',
    API_KEYS: `${ADMIN}:admin,${CLIENT}:client,${OTHER}:client:other`,
    ALLOW_PRIVATE_URLS: 'false',
    RATE_LIMIT_SUBMITS_PER_MINUTE: '1000000',
    RATE_LIMIT_READS_PER_MINUTE: '1000000',
    S3_ENDPOINT: 'http://127.0.0.1:9',
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test-secret',
    ...env,
  };
}

export async function startTestGateway(natsUrl: string, env: Record<string, string> = {}): Promise<Gateway> {
  const config = loadConfig(gatewaySpec, gatewayEnv(natsUrl, env), gatewayRefinements);
  const gw = await startGateway({ config, logger, registry: createRegistry('gateway') });
  await gw.nats.ready;
  return gw;
}

export interface Answer<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export class Client {
  constructor(
    readonly baseUrl: string,
    /** null: send no key. */
    readonly key: string | null = ADMIN,
  ) {}

  as(key: string | null): Client {
    return new Client(this.baseUrl, key);
  }

  async raw(
    method: string,
    path: string,
    init: { body?: string; headers?: Record<string, string> } = {},
  ): Promise<Answer> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: { ...(this.key ? { authorization: `Bearer ${this.key}` } : {}), ...init.headers },
      ...(init.body !== undefined ? { body: init.body } : {}),
    });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON
    }
    return { status: res.status, headers: res.headers, body, text };
  }

  async json<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Answer<T>> {
    const a = await this.raw(method, path, {
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    });
    return a as Answer<T>;
  }
}

/** Starts a nats-server and a gateway; `stop()` undoes both. */
export async function startStack(env: Record<string, string> = {}): Promise<{
  nats: NatsServer;
  gateway: Gateway;
  api: Client;
  handle: NatsHandle;
  stop(): Promise<void>;
}> {
  const nats = await NatsServer.start();
  const gateway = await startTestGateway(nats.url, env);
  const handle = await NatsHandle.connect({ servers: [nats.url], name: 'gateway-test', logger });
  return {
    nats,
    gateway,
    api: new Client(gateway.url),
    handle,
    async stop() {
      await handle.drain();
      await gateway.close();
      await nats.dispose();
    },
  };
}

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: { field: string; message: string }[];
}

/** Asserts an answer is an RFC 9457 problem with this status, and returns its body. */
export function expectProblem(a: Answer, status: number): ProblemBody {
  if (a.status !== status) throw new Error(`expected ${status}, got ${a.status}: ${a.text.slice(0, 500)}`);
  expect(a.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const b = a.body as ProblemBody;
  expect(b).toMatchObject({ status, type: expect.stringMatching(/^urn:gantry:problem:/) });
  expect(typeof b.title).toBe('string');
  expect(typeof b.detail).toBe('string');
  return b;
}
