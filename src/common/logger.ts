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

/** Levels from most to least severe; `silent` logs nothing. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
/** The least severe level logged unless the configuration says otherwise. */
export const DEFAULT_LOG_LEVEL = 'info';

export function createLogger(options: {
  level?: string;
  name?: string;
  destination?: DestinationStream;
}): Logger {
  return pino(
    {
      level: options.level ?? DEFAULT_LOG_LEVEL,
      ...(options.name === undefined ? {} : { name: options.name }),
      redact: { paths: REDACT, censor: '[redacted]' },
    },
    options.destination ?? pino.destination(1),
  );
}

export type { Logger };
