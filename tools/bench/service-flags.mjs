// Node flags the benches start Gantry's services with.

/**
 * The scheduler's Node flags: the heap settings docker-compose.yml and deploy/ ship for it (docs/architecture.md,
 * "Memory"), so that a bench measures the scheduler as deployed. SCHEDULER_NODE_ARGS in the environment replaces them
 * ('' = Node's defaults).
 */
export function schedulerNodeArgs() {
  return (process.env.SCHEDULER_NODE_ARGS ?? '--max-semi-space-size=2 --max-old-space-size=512')
    .split(' ')
    .filter(Boolean);
}
