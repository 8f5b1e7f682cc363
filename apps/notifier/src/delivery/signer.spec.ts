import { Webhook } from 'standardwebhooks';
import { WebhookSigner } from './signer';

const DEFAULT = 'whsec_ZGVmYXVsdC1zZWNyZXQtMDAwMDAwMDE=';
const ACME_OLD = 'whsec_YWNtZS1vbGQtc2VjcmV0LTAwMDAwMDAx';
const ACME_NEW = 'whsec_YWNtZS1uZXctc2VjcmV0LTAwMDAwMDAx';
const GLOBEX = 'whsec_Z2xvYmV4LXNlY3JldC0wMDAwMDAwMDAx';

function verifies(secret: string, id: string, at: Date, body: string, signature: string): boolean {
  try {
    new Webhook(secret).verify(body, {
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
      'webhook-signature': signature,
    });
    return true;
  } catch {
    return false;
  }
}

describe('WebhookSigner', () => {
  const signer = new WebhookSigner(DEFAULT, { acme: [ACME_OLD, ACME_NEW], globex: [GLOBEX] });
  const body = JSON.stringify({ type: 'job.completed', sequence: 3 });
  const at = new Date();

  it("signs a tenant's webhooks with its own secret only", () => {
    const sig = signer.sign('globex', 'msg_1', at, body);
    expect(sig.split(' ')).toHaveLength(1);
    expect(verifies(GLOBEX, 'msg_1', at, body, sig)).toBe(true);
    expect(verifies(DEFAULT, 'msg_1', at, body, sig)).toBe(false);
    expect(verifies(ACME_NEW, 'msg_1', at, body, sig)).toBe(false);
  });

  it('sends both signatures during a rotation; each secret verifies alone', () => {
    const sig = signer.sign('acme', 'msg_2', at, body);
    expect(sig.split(' ')).toHaveLength(2);
    expect(sig.split(' ').every((s) => s.startsWith('v1,'))).toBe(true);
    expect(verifies(ACME_OLD, 'msg_2', at, body, sig)).toBe(true);
    expect(verifies(ACME_NEW, 'msg_2', at, body, sig)).toBe(true);
    expect(verifies(GLOBEX, 'msg_2', at, body, sig)).toBe(false);
  });

  it('uses WEBHOOK_SECRET for tenants without their own', () => {
    const sig = signer.sign('default', 'msg_3', at, body);
    expect(verifies(DEFAULT, 'msg_3', at, body, sig)).toBe(true);
    expect(verifies(ACME_OLD, 'msg_3', at, body, sig)).toBe(false);
  });

  it('binds the signature to the id, the timestamp and the body', () => {
    const sig = signer.sign('default', 'msg_4', at, body);
    expect(verifies(DEFAULT, 'msg_5', at, body, sig)).toBe(false);
    expect(verifies(DEFAULT, 'msg_4', new Date(at.getTime() + 2_000), body, sig)).toBe(false);
    expect(verifies(DEFAULT, 'msg_4', at, `${body} `, sig)).toBe(false);
  });
});
