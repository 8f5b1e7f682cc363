export {
  loadConfig,
  redactConfig,
  ConfigError,
  str,
  optionalStr,
  oneOf,
  int,
  optionalInt,
  port,
  bool,
  intList,
  url,
  optionalUrl,
  natsServers,
} from './env';
export type { VariableSpec, Spec, ConfigOf, ConfigProblem, Refinement } from './env';
export {
  LOG_LEVELS,
  commonSpec,
  livenessSpec,
  s3Spec,
  jobPolicySpec,
  DEV_API_KEYS,
  apiKeys,
  refuseDevKeysInProduction,
  DEV_WEBHOOK_SECRET,
  webhookSecret,
  webhookSecrets,
  refuseDevSecretInProduction,
  tenantWeights,
  fairShareSpec,
} from './common';
export type { Role, ApiKey } from './common';
export { loadConfigOrExit, runService, exitOnBootError, bootExitCode } from './boot';
