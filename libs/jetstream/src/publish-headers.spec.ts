import { errors as natsErrors, headers as natsHeaders, type MsgHdrs } from '@nats-io/nats-core';
import { PublishHeaders } from './publish-headers';

const text = (b: Uint8Array) => new TextDecoder().decode(b);
/** What nats.js's publish writes for its header object (`MsgHdrsImpl.encode`, not part of the `MsgHdrs` type). */
const wire = (h: MsgHdrs) => (h as unknown as { encode(): Uint8Array }).encode();

/** The same calls on ours and on nats.js's own header object. */
function both(calls: [string, string][]): { ours: PublishHeaders; theirs: MsgHdrs } {
  const ours = new PublishHeaders();
  const theirs = natsHeaders();
  for (const [k, v] of calls) {
    ours.set(k, v);
    theirs.set(k, v);
  }
  return { ours, theirs };
}

describe('PublishHeaders', () => {
  it('writes the bytes nats.js writes for the same sets: their order, keys as given, values trimmed, a key set again last', () => {
    const { ours, theirs } = both([
      ['traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'],
      ['Nats-Msg-Id', 'job-1.3'],
      ['Nats-Expected-Last-Subject-Sequence', '41'],
      ['X-Gantry', '  padded  '],
      ['Nats-Msg-Id', 'job-1.4'],
    ]);
    expect(text(ours.encode())).toBe(text(wire(theirs)));
    expect(text(ours.encode())).toBe(
      'NATS/1.0\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n' +
        'Nats-Expected-Last-Subject-Sequence: 41\r\nX-Gantry: padded\r\nNats-Msg-Id: job-1.4\r\n\r\n',
    );
    expect(ours.keys()).toEqual(theirs.keys());
    expect(ours.get('Nats-Msg-Id')).toBe('job-1.4');
    expect(ours.get('nats-msg-id')).toBe(theirs.get('nats-msg-id')); // exact match, as MsgHdrs by default: ''
    expect(ours.size).toBe(4);
  });

  it('no header encodes to nothing, as nats.js', () => {
    const { ours, theirs } = both([]);
    expect(ours.encode()).toHaveLength(0);
    expect(wire(theirs)).toHaveLength(0);
  });

  it.each([
    ['a key with a colon', 'Bad:Key', 'v'],
    ['a key with a space', 'Bad Key', 'v'],
    ['a key with a non-ASCII character', 'Clé', 'v'],
    ['an empty key', '', 'v'],
    ['a value with CR LF (header injection)', 'X-Inject', 'a\r\nNats-Expected-Last-Sequence: 1'],
    ['a value with LF', 'X-Inject', 'a\nb'],
  ])('refuses %s with the InvalidArgumentError nats.js throws, and keeps nothing of it', (_what, k, v) => {
    const ours = new PublishHeaders();
    let thrown: unknown;
    try {
      ours.set(k, v);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(natsErrors.InvalidArgumentError);
    if (k !== '') expect(() => natsHeaders().set(k, v)).toThrow(natsErrors.InvalidArgumentError);
    expect(ours.size).toBe(0);
    expect(ours.encode()).toHaveLength(0);
  });

  it('toMsgHdrs gives nats.js headers holding the same values (for a client whose publish is wrapped)', () => {
    const { ours, theirs } = both([
      ['a', '1'],
      ['B-Key', '2'],
    ]);
    const h = ours.toMsgHdrs();
    expect(text(wire(h))).toBe(text(wire(theirs)));
    expect(h.get('B-Key')).toBe('2');
  });
});
