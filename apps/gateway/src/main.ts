import 'reflect-metadata';
import { loadConfigOrExit } from '@gantry/config';
import { createLogger, startTelemetry } from '@gantry/telemetry';
import { startGateway } from './bootstrap';
import { gatewayRefinements, gatewaySpec } from './config';

async function main(): Promise<void> {
  const config = loadConfigOrExit('gateway', gatewaySpec, gatewayRefinements);
  const telemetry = startTelemetry('gateway');
  const logger = createLogger('gateway', config.LOG_LEVEL);
  const gateway = await startGateway({ config, logger });
  logger.info({ url: gateway.url }, 'gateway listening');

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'gateway stopping');
    await gateway.close();
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
