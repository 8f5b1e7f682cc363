import { ConfigError, loadConfig, type ConfigOf, type Refinement, type Spec } from './env';

/**
 * Loads a service's configuration at boot. On any bad variable it prints every problem to stderr and exits with 78
 * (EX_CONFIG), so a misconfigured pod fails fast and says why.
 */
export function loadConfigOrExit<S extends Spec>(
  service: string,
  spec: S,
  refinements: readonly Refinement<S>[] = [],
  env: NodeJS.ProcessEnv = process.env,
): ConfigOf<S> {
  try {
    return loadConfig(spec, env, refinements);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${service}: ${err.message}\n`);
      process.exit(78);
    }
    throw err;
  }
}
