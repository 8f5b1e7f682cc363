import 'reflect-metadata';
import { loadConfigOrExit, runService } from '@gantry/config';
import { createLogger, createRegistry, startTelemetry } from '@gantry/telemetry';
import { workerSpec } from './config';
import { SandboxUnavailableError } from './sandbox/sandbox';
import { startWorker } from './worker.app';

/** Exit code of a worker whose host cannot sandbox job processes (EX_UNAVAILABLE). */
const EXIT_SANDBOX_UNAVAILABLE = 69;

runService('gpu-worker', async () => {
  const config = loadConfigOrExit('gpu-worker', workerSpec);
  const telemetry = startTelemetry('gpu-worker');
  const logger = createLogger('gpu-worker', config.LOG_LEVEL);
  const app = await startWorker(config, { logger, registry: createRegistry('gpu-worker') }).catch((err: unknown) => {
    if (err instanceof SandboxUnavailableError) {
      logger.fatal({ code: err.code }, err.message);
      process.stderr.write(`gpu-worker: refusing to start: ${err.message}\n`);
      process.exit(EXIT_SANDBOX_UNAVAILABLE);
    }
    throw err;
  });

  return async (signal) => {
    await app.shutdown(signal).catch((err: unknown) => logger.error({ err }, 'shutdown failed'));
    await telemetry.shutdown();
  };
});
