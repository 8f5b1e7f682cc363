import 'reflect-metadata';
import { loadConfigOrExit, runService } from '@gantry/config';
import { createLogger, createRegistry, startTelemetry } from '@gantry/telemetry';
import { workerSpec } from './config';
import { startWorker } from './worker.app';

runService('gpu-worker', async () => {
  const config = loadConfigOrExit('gpu-worker', workerSpec);
  const telemetry = startTelemetry('gpu-worker');
  const logger = createLogger('gpu-worker', config.LOG_LEVEL);
  const app = await startWorker(config, { logger, registry: createRegistry('gpu-worker') });

  return async (signal) => {
    await app.shutdown(signal).catch((err: unknown) => logger.error({ err }, 'shutdown failed'));
    await telemetry.shutdown();
  };
});
