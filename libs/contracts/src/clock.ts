/** The clock port. Services take one so that tests can drive time; production uses {@link systemClock}. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
