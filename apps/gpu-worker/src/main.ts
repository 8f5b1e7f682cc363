import 'reflect-metadata';
import { loadConfigOrExit } from '@gantry/config';
import { createLogger, createRegistry, startTelemetry } from '@gantry/telemetry';
import { workerSpec } from './config';
import { startWorker } from './worker.app';

async function main(): Promise<void> {
  const config = loadConfigOrExit('gpu-worker', workerSpec);
  const telemetry = startTelemetry('gpu-worker');
  const logger = createLogger('gpu-worker', config.LOG_LEVEL);
  const app = await startWorker(config, { logger, registry: createRegistry('gpu-worker') });

  const stop = (signal: string) => {
    void app
      .shutdown(signal)
      .catch((err: unknown) => logger.error({ err }, 'shutdown failed'))
      .then(() => telemetry.shutdown())
      .finally(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(
    `gpu-worker failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
