/**
 * A real nats-server cluster on loopback for tests: N nodes (3 by default) joined by routes, JetStream on every node,
 * each with its own port, route port and store. Nodes can be killed (`kill -9`) and restarted on the same ports and
 * store, one at a time or all together, to test client failover, the loss and return of the node that holds a
 * stream, and whole-cluster restarts.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { NatsServer } from './nats-server';
import { freePort } from './ports';
import { waitFor } from './wait';

export interface NatsClusterOptions {
  /** Number of nodes (3 by default). */
  size?: number;
  /** Extra nats-server arguments for every node. */
  args?: string[];
  verbose?: boolean;
}

export interface NatsClusterNode {
  /** The node's `server_name` (n1, n2, …): what JetStream reports as a stream's leader or replica. */
  name: string;
  server: NatsServer;
  clusterPort: number;
}

export class NatsCluster {
  private constructor(readonly nodes: NatsClusterNode[]) {}

  static async start(o: NatsClusterOptions = {}): Promise<NatsCluster> {
    const size = o.size ?? 3;
    const ports = await Promise.all(Array.from({ length: size }, async () => [await freePort(), await freePort()]));
    const routes = ports.map(([, c]) => `nats://127.0.0.1:${c}`).join(',');
    const nodes: NatsClusterNode[] = [];
    try {
      // All nodes start together: a JetStream cluster elects its meta leader only once a quorum is up.
      await Promise.all(
        ports.map(async ([port, clusterPort], i) => {
          const name = `n${i + 1}`;
          const server = await NatsServer.start({
            port,
            verbose: o.verbose,
            args: [
              '--server_name',
              name,
              '--cluster_name',
              'gantry-test',
              '--cluster',
              `nats://127.0.0.1:${clusterPort}`,
              '--routes',
              routes,
              ...(o.args ?? []),
            ],
          });
          nodes[i] = { name, server, clusterPort: clusterPort! };
        }),
      );
    } catch (err) {
      await Promise.all(nodes.filter(Boolean).map((n) => n.server.dispose().catch(() => undefined)));
      throw err;
    }
    const cluster = new NatsCluster(nodes);
    await cluster.waitForJetStream();
    return cluster;
  }

  /** Client URLs of every node (give them all to a client: it fails over between them). */
  get urls(): string[] {
    return this.nodes.map((n) => n.server.url);
  }

  /** `NATS_URL` for a service: every node, comma-separated. */
  get url(): string {
    return this.urls.join(',');
  }

  node(name: string): NatsClusterNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name} in this cluster`);
    return n;
  }

  /** Waits until JetStream answers API calls through the running nodes (a meta leader is elected). */
  async waitForJetStream(timeoutMs = 60_000): Promise<void> {
    await waitFor(
      async () => {
        const nc = await connect({ servers: this.runningUrls(), timeout: 2_000, reconnect: false }).catch(
          () => undefined,
        );
        if (!nc) return false;
        try {
          const jsm = await jetstreamManager(nc, { timeout: 2_000 });
          await jsm.getAccountInfo();
          return true;
        } catch {
          return false;
        } finally {
          await nc.close().catch(() => undefined);
        }
      },
      { what: 'JetStream ready on the cluster', timeoutMs, intervalMs: 250 },
    );
  }

  /** The node that leads a stream now (its `server_name`), as JetStream reports it. */
  async streamLeader(stream: string): Promise<string | undefined> {
    return (await this.streamCluster(stream))?.leader;
  }

  /** Where a stream lives: its leader and replicas. */
  async streamCluster(stream: string): Promise<{ leader?: string; replicas: string[] } | undefined> {
    const nc = await connect({ servers: this.runningUrls(), timeout: 2_000, reconnect: false });
    try {
      const jsm = await jetstreamManager(nc, { timeout: 5_000 });
      const info = await jsm.streams.info(stream);
      return { leader: info.cluster?.leader, replicas: (info.cluster?.replicas ?? []).map((r) => r.name) };
    } finally {
      await nc.close().catch(() => undefined);
    }
  }

  private runningUrls(): string[] {
    const up = this.nodes.filter((n) => n.server.pid !== undefined).map((n) => n.server.url);
    return up.length > 0 ? up : this.urls;
  }

  /** `kill -9` of every node, then all start again on their ports and stores. */
  async restartAll(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.server.kill()));
    await Promise.all(this.nodes.map((n) => n.server.restart()));
    await this.waitForJetStream();
  }

  /** Stops every node and removes the stores this harness created. */
  async dispose(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.server.dispose().catch(() => undefined)));
  }
}
