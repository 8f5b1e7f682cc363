import 'reflect-metadata';
import { loadConfigOrExit, runService } from '@gantry/config';
import { createLogger, startTelemetry } from '@gantry/telemetry';
import { notifierRefinements, notifierSpec } from './config';
import { startNotifier } from './notifier.app';

runService('notifier', async () => {
  const config = loadConfigOrExit('notifier', notifierSpec, notifierRefinements);
  const telemetry = startTelemetry('notifier');
  const logger = createLogger('notifier', config.LOG_LEVEL);
  const notifier = await startNotifier(config, logger);

  return async (signal) => {
    logger.info({ signal }, 'notifier stopping');
    await notifier.close();
    await telemetry.shutdown();
  };
});
