import 'reflect-metadata';
import { loadConfigOrExit } from '@gantry/config';
import { createLogger, startTelemetry } from '@gantry/telemetry';
import { notifierRefinements, notifierSpec } from './config';
import { startNotifier } from './notifier';

async function main(): Promise<void> {
  const config = loadConfigOrExit('notifier', notifierSpec, notifierRefinements);
  const telemetry = startTelemetry('notifier');
  const logger = createLogger('notifier', config.LOG_LEVEL);
  const notifier = await startNotifier(config, logger);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'notifier stopping');
    await notifier.close();
    await telemetry.shutdown();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(
    `notifier failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
