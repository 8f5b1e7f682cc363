import 'reflect-metadata';
import { loadConfigOrExit, runService } from '@gantry/config';
import { createLogger, startTelemetry } from '@gantry/telemetry';
import { startGateway } from './gateway.app';
import { gatewayRefinements, gatewaySpec } from './config';

runService('gateway', async () => {
  const config = loadConfigOrExit('gateway', gatewaySpec, gatewayRefinements);
  const telemetry = startTelemetry('gateway');
  const logger = createLogger('gateway', config.LOG_LEVEL);
  const gateway = await startGateway({ config, logger });
  logger.info({ url: gateway.url }, 'gateway listening');

  return async (signal) => {
    logger.info({ signal }, 'gateway stopping');
    await gateway.close();
    await telemetry.shutdown();
  };
});
