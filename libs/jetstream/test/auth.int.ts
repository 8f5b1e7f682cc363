/**
 * NATS credentials against a real nats-server that requires a user (the dev server of `npm run up` and the test
 * kit's `auth: true`): the services' connection authenticates; a client without credentials, or with a wrong
 * password, is refused; and the credential variables are checked before any connection is tried.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { createLogger } from '@gantry/telemetry';
import { NatsServer } from '@gantry/testing';
import { NatsAuthConfigError, NatsHandle, natsAuthOptions } from '../src';

const logger = createLogger('auth-int', 'silent');

describe('NATS credentials', () => {
  let server: NatsServer;

  beforeAll(async () => {
    server = await NatsServer.start({ auth: true });
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('connects a service with NATS_USER / NATS_PASSWORD and runs JetStream calls', async () => {
    const handle = await NatsHandle.connect({
      servers: [server.url],
      name: 'auth-int',
      logger,
      auth: server.authEnv(),
    });
    try {
      expect(handle.connected).toBe(true);
      expect((await handle.jsm.getAccountInfo()).streams).toBeGreaterThanOrEqual(0);
    } finally {
      await handle.drain();
    }
  });

  it('refuses a client without credentials, and one with a wrong password', async () => {
    await expect(connect({ servers: server.url, reconnect: false, timeout: 5_000 })).rejects.toThrow(
      /authorization|Authorization/,
    );
    await expect(
      connect({ servers: server.url, reconnect: false, timeout: 5_000, user: 'gantry', pass: 'not-the-password' }),
    ).rejects.toThrow(/authorization|Authorization/);
  });

  it('checks the credential variables before connecting', () => {
    expect(() => natsAuthOptions({ NATS_USER: 'u' })).toThrow(NatsAuthConfigError);
    expect(() => natsAuthOptions({ NATS_USER: 'u', NATS_PASSWORD: 'p', NATS_TOKEN: 't' })).toThrow(
      /only one kind of NATS credentials/,
    );
    expect(() => natsAuthOptions({ NATS_CREDS_FILE: '/nonexistent/x.creds' })).toThrow(/cannot read/);
    expect(natsAuthOptions({})).toEqual({});
    expect(natsAuthOptions({ NATS_USER: 'u', NATS_PASSWORD: 'p' })).toEqual({ user: 'u', pass: 'p' });
    const dir = mkdtempSync(join(tmpdir(), 'gantry-nkey-'));
    try {
      // A user nkey seed (from the nkeys docs): the authenticator is built from the file's content.
      const seed = join(dir, 'user.nk');
      writeFileSync(seed, 'SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU\n');
      expect(natsAuthOptions({ NATS_NKEY_SEED_FILE: seed }).authenticator).toBeInstanceOf(Function);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
