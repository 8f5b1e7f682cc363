// A webhook endpoint that accepts only deliveries Gantry signed (Standard Webhooks), using the raw body.
import { createServer } from 'node:http';
import { verifyWebhook, WebhookVerificationError } from '@gantry/client';

const secret = process.env['WEBHOOK_SECRET'] ?? '';

createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    try {
      const event = verifyWebhook(Buffer.concat(chunks).toString('utf8'), req.headers, secret);
      console.log(event.type, event.data.id, event.data.status);
      res.writeHead(204).end();
    } catch (err) {
      res.writeHead(err instanceof WebhookVerificationError ? 401 : 500).end();
    }
  });
}).listen(9000);
