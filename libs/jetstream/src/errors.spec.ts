import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { JetStreamStatusError, jserrors } from '@nats-io/jetstream/internal';
import { errors as natsErrors } from '@nats-io/nats-core';
import { isAlreadyExists, isNatsUnavailable, isNotFound, isWrongLastSequence } from './errors';

const api = (code: number, status: number, description = 'whatever the text says') =>
  new JetStreamApiError({ err_code: code, code: status, description });

describe('NATS error predicates (by code or class, never by text)', () => {
  it('isWrongLastSequence: both wrong-last-sequence codes, nothing else (whatever the message)', () => {
    expect(isWrongLastSequence(api(JetStreamApiCodes.StreamWrongLastSequence, 400))).toBe(true);
    expect(isWrongLastSequence(api(JetStreamApiCodes.StreamWrongLastSequenceUnknown, 400))).toBe(true);
    expect(isWrongLastSequence(api(10058, 400, 'wrong last sequence'))).toBe(false);
    expect(isWrongLastSequence(new Error('wrong last sequence: 4'))).toBe(false);
  });

  it('isNotFound: a 404 from the server only', () => {
    expect(isNotFound(api(JetStreamApiCodes.NoMessageFound, 404))).toBe(true);
    expect(isNotFound(api(JetStreamApiCodes.StreamNotFound, 404))).toBe(true);
    expect(isNotFound(new Error('stream not found'))).toBe(false);
    expect(isNotFound(api(10058, 400, 'not found'))).toBe(false);
  });

  it('isAlreadyExists: stream or consumer name in use', () => {
    expect(isAlreadyExists(api(10058, 400))).toBe(true);
    expect(isAlreadyExists(api(10013, 400))).toBe(true);
    expect(isAlreadyExists(api(10148, 400))).toBe(true);
    expect(isAlreadyExists(new Error('already in use'))).toBe(false);
  });

  it('isNatsUnavailable: connection, timeout, no responders and JetStream-unavailable errors, also as a cause', () => {
    expect(isNatsUnavailable(new natsErrors.TimeoutError())).toBe(true);
    expect(isNatsUnavailable(new natsErrors.NoRespondersError('$JS.API.INFO'))).toBe(true);
    expect(isNatsUnavailable(new natsErrors.ClosedConnectionError())).toBe(true);
    expect(isNatsUnavailable(new jserrors.JetStreamNotEnabled('jetstream is not enabled'))).toBe(true);
    expect(isNatsUnavailable(api(10008, 503))).toBe(true);
    expect(isNatsUnavailable(new JetStreamStatusError('no responders', 503))).toBe(true);
    expect(isNatsUnavailable(new Error('write failed', { cause: new natsErrors.TimeoutError() }))).toBe(true);
    // Text that looks like trouble is not trouble.
    expect(isNatsUnavailable(new Error('NATS CONNECTION TIMEOUT 503 no responders'))).toBe(false);
    expect(isNatsUnavailable(api(JetStreamApiCodes.StreamWrongLastSequence, 400))).toBe(false);
  });
});
