import pino, { type DestinationStream, type Logger } from 'pino';

/** Fields that may carry a secret; pino replaces their values before anything is written. */
const REDACT = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  'token',
  '*.token',
  'password',
  '*.password',
  'privateKeyPem',
  '*.privateKeyPem',
  'secret',
  '*.secret',
];

export function createLogger(options: {
  level?: string;
  name?: string;
  destination?: DestinationStream;
}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      ...(options.name === undefined ? {} : { name: options.name }),
      redact: { paths: REDACT, censor: '[redacted]' },
    },
    options.destination ?? pino.destination(1),
  );
}

export type { Logger };
