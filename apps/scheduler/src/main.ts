import 'reflect-metadata';
import { loadConfigOrExit, runService } from '@gantry/config';
import { createLogger, createRegistry, startTelemetry } from '@gantry/telemetry';
import { schedulerSpec } from './config';
import { startScheduler } from './scheduler.app';

runService('scheduler', async () => {
  const config = loadConfigOrExit('scheduler', schedulerSpec);
  const telemetry = startTelemetry('scheduler');
  const logger = createLogger('scheduler', config.LOG_LEVEL);
  const scheduler = await startScheduler(config, { logger, registry: createRegistry('scheduler') });
  return async (signal) => {
    logger.info({ signal }, 'scheduler stopping');
    await scheduler.close();
    await telemetry.shutdown();
  };
});
