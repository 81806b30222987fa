import type { ErrorCatalogue } from '../common/index.js';

/**
 * Every code the CLI raises itself; `iotdr` prints `iotdr <command>: <message> (<code>)` and exits
 * 1. The CLI has no front door (nothing imports it), so this catalogue is imported where needed.
 */
export const CLI_ERRORS = {
  IOTDR_CLI_NO_ADMIN_TOKEN: {
    meaning: "the admin token cannot be read from the state directory's secrets/admin.token",
  },
  IOTDR_CLI_NO_REGION: { meaning: 'the configuration has no region, so there is no API to ask' },
  IOTDR_CLI_USAGE: { meaning: 'the options given do not go together (the message says what is missing)' },
  IOTDR_CLI_DIGEST_ALGORITHM: {
    meaning:
      '`replication diff` compared two regions that digest with different algorithms (different versions)',
  },
} as const satisfies ErrorCatalogue;

type CliErrors = typeof CLI_ERRORS;
declare module '../common/index.js' {
  interface IotdrErrorCodes extends CliErrors {}
}
