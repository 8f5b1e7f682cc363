/** Standard Webhooks signatures (the `standardwebhooks` library). Two secrets during a rotation = two signatures. */
import { Webhook } from 'standardwebhooks';

export class WebhookSigner {
  private readonly defaultKeys: Webhook[];
  private readonly tenantKeys = new Map<string, Webhook[]>();

  constructor(defaultSecret: string, perTenant: Readonly<Record<string, string[]>>) {
    this.defaultKeys = [new Webhook(defaultSecret)];
    for (const [tenant, secrets] of Object.entries(perTenant))
      this.tenantKeys.set(
        tenant,
        secrets.map((s) => new Webhook(s)),
      );
  }

  /** The `webhook-signature` header value: space-separated `v1,<base64>` entries. */
  sign(tenant: string, webhookId: string, timestamp: Date, body: string): string {
    const keys = this.tenantKeys.get(tenant) ?? this.defaultKeys;
    return keys.map((k) => k.sign(webhookId, timestamp, body)).join(' ');
  }
}
