// A throwaway webhook endpoint for trying Gantry: verifies every delivery with the `standardwebhooks` library and
// prints it. Usage: WEBHOOK_SECRET=whsec_… node tools/webhook-receiver.mjs [port]
import { createServer } from 'node:http';
import { Webhook } from 'standardwebhooks';

const secret = process.env.WEBHOOK_SECRET ?? 'whsec_Z2FudHJ5LWRldi13ZWJob29rLXNlY3JldC0wMDAx';
const port = Number(process.argv[2] ?? 9999);
const wh = new Webhook(secret);
createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    try {
      const event = wh.verify(body, req.headers);
      console.log(
        `verified ${req.headers['webhook-id']} ${event.type} seq=${event.sequence} status=${event.data.status}`,
      );
      res.writeHead(204).end();
    } catch (err) {
      console.log(`REJECTED ${req.headers['webhook-id']}: ${err.message}`);
      res.writeHead(400).end();
    }
  });
}).listen(port, '127.0.0.1', () => console.log(`webhook receiver on http://127.0.0.1:${port}`));
