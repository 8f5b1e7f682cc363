// The broker's side of a bench: counters of a nats-server read through its monitoring port (/varz, /jsz, /connz), the
// difference between two readings, and the lines that report it per job. Used by `bench:vs-bullmq` and
// `bench:gateway`.

const perJob = (n, jobs) => (n / jobs).toFixed(2);

/** Counters of a nats-server through its monitoring port. */
export async function natsCounters(monitor) {
  const get = async (path) => (await fetch(`${monitor}${path}`)).json();
  const [varz, jsz, connz] = await Promise.all([
    get('/varz'),
    get('/jsz?streams=true&consumers=true'),
    get('/connz?limit=4096'),
  ]);
  const streams = {};
  const deliveries = {};
  for (const acc of jsz.account_details ?? []) {
    for (const s of acc.stream_detail ?? []) {
      streams[s.name] = s.state.last_seq;
      for (const c of s.consumer_detail ?? []) {
        // Ordered and other ephemeral consumers have random names: count them per stream.
        deliveries[`${s.name}/${c.name}`] = c.delivered?.consumer_seq ?? 0;
      }
    }
  }
  const components = {};
  for (const c of connz.connections ?? []) {
    const who = component(c.name ?? '');
    const x = (components[who] ??= { in: 0, out: 0, conns: new Set() });
    x.in += c.in_msgs;
    x.out += c.out_msgs;
    x.conns.add(c.cid);
  }
  // Connections closed since (an ordered consumer's reconnect, a stopped process) are not in /connz: their
  // messages count in the server totals only.
  return {
    inMsgs: varz.in_msgs,
    outMsgs: varz.out_msgs,
    inBytes: varz.in_bytes,
    outBytes: varz.out_bytes,
    api: jsz.api?.total ?? 0,
    apiErrors: jsz.api?.errors ?? 0,
    streams,
    deliveries,
    components,
    perConn: Object.fromEntries((connz.connections ?? []).map((c) => [c.cid, { in: c.in_msgs, out: c.out_msgs }])),
  };
}

/** Which Gantry component a NATS connection belongs to, from its name. */
function component(name) {
  for (const p of ['scheduler', 'notifier', 'gpu-worker', 'gateway']) if (name.startsWith(p)) return p;
  return name || '(unnamed)';
}

export function natsDelta(a, b) {
  const streams = {};
  for (const [k, v] of Object.entries(b.streams)) streams[k] = v - (a.streams[k] ?? 0);
  const deliveries = {};
  for (const [k, v] of Object.entries(b.deliveries)) {
    const stream = k.split('/')[0];
    deliveries[stream] = (deliveries[stream] ?? 0) + Math.max(0, v - (a.deliveries[k] ?? 0));
  }
  const components = {};
  for (const [who, x] of Object.entries(b.components)) {
    let dIn = 0;
    let dOut = 0;
    for (const cid of x.conns) {
      dIn += b.perConn[cid].in - (a.perConn[cid]?.in ?? 0);
      dOut += b.perConn[cid].out - (a.perConn[cid]?.out ?? 0);
    }
    components[who] = { in: dIn, out: dOut };
  }
  return {
    inMsgs: b.inMsgs - a.inMsgs,
    outMsgs: b.outMsgs - a.outMsgs,
    inBytes: b.inBytes - a.inBytes,
    outBytes: b.outBytes - a.outBytes,
    api: b.api - a.api,
    apiErrors: b.apiErrors - a.apiErrors,
    streams,
    deliveries,
    components,
  };
}

/**
 * What the broker did per job between two readings: messages and bytes in and out, JetStream API calls, durable
 * writes per stream, consumer deliveries per stream and messages per component (client → server / server → client).
 */
export function brokerReport(d, jobs) {
  const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);
  const byCount = (o) =>
    Object.entries(o)
      .filter(([, v]) => v > 0)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${perJob(v, jobs)}`)
      .join(', ');
  return [
    `broker per job: ${perJob(d.inMsgs, jobs)} msgs in, ${perJob(d.outMsgs, jobs)} msgs out ` +
      `(${perJob(d.inBytes, jobs)} B in, ${perJob(d.outBytes, jobs)} B out), ${perJob(d.api, jobs)} JetStream API calls` +
      (d.apiErrors ? ` (${d.apiErrors} errors)` : ''),
    `durable writes per job: ${perJob(sum(d.streams), jobs)} — ${byCount(d.streams)}`,
    `consumer deliveries per job: ${perJob(sum(d.deliveries), jobs)} — ${byCount(d.deliveries)}`,
    `messages per job by component (client → server / server → client): ${Object.entries(d.components)
      .sort((a, b) => b[1].in + b[1].out - (a[1].in + a[1].out))
      .map(([k, v]) => `${k} ${perJob(v.in, jobs)} / ${perJob(v.out, jobs)}`)
      .join(', ')}`,
  ];
}
