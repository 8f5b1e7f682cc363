import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { JobTypeRegistry, systemClock } from '@gantry/contracts';
import { loadConfigOrExit } from '@gantry/config';
import { OutputStore } from '@gantry/storage';
import { createLogger, createRegistry, NestPinoLogger, startTelemetry } from '@gantry/telemetry';
import { GatewayModule } from './app.module';
import { gatewayRefinements, gatewaySpec } from './config';
import { problems } from './http/problem';
import { GatewayNats } from './nats/gateway-nats';

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH']);

async function main(): Promise<void> {
  const config = loadConfigOrExit('gateway', gatewaySpec, gatewayRefinements);
  const telemetry = startTelemetry('gateway');
  const logger = createLogger('gateway', config.LOG_LEVEL);
  const registry = createRegistry('gateway');
  const types = JobTypeRegistry.load(config.JOB_TYPES_FILE);
  const nats = new GatewayNats(config, logger);
  const outputs = new OutputStore(config);

  const adapter = new FastifyAdapter({ bodyLimit: config.BODY_LIMIT_BYTES, return503OnClosing: true });
  const app = await NestFactory.create<NestFastifyApplication>(
    GatewayModule.register({ config, logger, clock: systemClock, types, outputs, registry, nats }),
    adapter,
    { logger: new NestPinoLogger(logger) },
  );
  const fastify = app.getHttpAdapter().getInstance();
  // Write routes accept JSON only: refuse anything else before it is parsed.
  fastify.addHook('onRequest', async (req, reply) => {
    if (!WRITE_METHODS.has(req.method) || !req.url.startsWith('/v1/')) return;
    const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if ((hasBody || type) && type !== 'application/json') {
      const p = problems.unsupportedMedia();
      await reply
        .status(415)
        .headers({ 'content-type': 'application/problem+json' })
        .send(JSON.stringify(p.body(req.url.split('?')[0])));
    }
  });

  const doc = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('Gantry')
      .setDescription('A job queue for GPU work. Every error is RFC 9457 application/problem+json.')
      .setVersion('1')
      .addBearerAuth({ type: 'http', scheme: 'bearer' }, 'bearer')
      .addApiKey({ type: 'apiKey', in: 'header', name: 'X-API-Key' }, 'apiKey')
      .build(),
  );
  SwaggerModule.setup('docs', app, doc, { jsonDocumentUrl: 'openapi.json', yamlDocumentUrl: 'openapi.yaml' });

  await app.listen(config.GATEWAY_PORT, config.GATEWAY_HOST);
  logger.info({ url: await app.getUrl() }, 'gateway listening');

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'gateway stopping');
    await app.close().catch(() => undefined);
    await nats.close();
    outputs.destroy();
    await telemetry.shutdown();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`gateway failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
