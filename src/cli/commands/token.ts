import { parseArgs } from 'node:util';
import { loadConfig, primaryRegion, regionByName } from '../../config/index.js';
import { CNC_OPERATIONS, ROLES } from '../../registry/index.js';
import { apiOf, table } from '../api.js';
import type { CliIo, Command } from '../io.js';

const USAGE = `usage: iotdr token <subcommand> [options]

subcommands:
  create --name NAME --role ROLE   make a bearer token; it is printed once, keep it
         [--operations a,b]        a console token limited to these command-and-control
         [--groups g1,g2]          operations (${CNC_OPERATIONS.join(', ')}) and thing groups
  list                             the tokens of the region (never their secrets)
  revoke TOKEN_ID                  delete a token; it stops working at once

options:
  --region NAME    the region to talk to (default: the primary)
  --config FILE    configuration file
  -h, --help       show this help

roles: ${ROLES.join(', ')}. The admin token of <state>/secrets/admin.token authorizes the call.`;

interface Values {
  name?: string;
  role?: string;
  operations?: string;
  groups?: string;
  region?: string;
  config?: string;
  help?: boolean;
}

interface TokenView {
  tokenId: string;
  name: string;
  role: string;
  createdAt: string;
}

export const tokenCommand: Command = async (argv, io: CliIo) => {
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: {
        name: { type: 'string' },
        role: { type: 'string' },
        operations: { type: 'string' },
        groups: { type: 'string' },
        region: { type: 'string' },
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: true,
    }));
  } catch (error) {
    io.err(`iotdr token: ${(error as Error).message}`);
    io.err(USAGE);
    return 2;
  }
  const [sub, ...rest] = positionals;
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  const bad = (message: string) => {
    io.err(`iotdr token: ${message}`);
    io.err(USAGE);
    return 2;
  };
  if (sub === 'create') {
    if (!values.name) return bad('create needs --name');
    if (!values.role || !(ROLES as readonly string[]).includes(values.role)) {
      return bad(`create needs --role, one of ${ROLES.join(', ')}`);
    }
  } else if (sub === 'revoke') {
    if (rest.length !== 1) return bad('revoke needs exactly one TOKEN_ID');
  } else if (sub !== 'list') {
    return bad(sub === undefined ? 'a subcommand is required' : `unknown subcommand '${sub}'`);
  }

  const loaded = await loadConfig({
    env: io.env,
    cwd: io.cwd,
    ...(values.config === undefined ? {} : { file: values.config }),
  });
  const region = values.region ? regionByName(loaded.config, values.region) : primaryRegion(loaded.config);
  const api = await apiOf(loaded, region);

  if (sub === 'create') {
    const list = (v: string | undefined) =>
      v
        ?.split(',')
        .map((x) => x.trim())
        .filter(Boolean);
    const scope = {
      ...(values.operations ? { operations: list(values.operations) } : {}),
      ...(values.groups ? { thingGroups: list(values.groups) } : {}),
    };
    const made = (await api.call('POST', '/v1/tokens', {
      body: { name: values.name, role: values.role, ...(Object.keys(scope).length > 0 ? { scope } : {}) },
    })) as {
      token: string;
      info: TokenView;
    };
    io.out(made.token);
    io.err(
      `token ${made.info.tokenId} (${made.info.role}, '${made.info.name}') made in ${region.name}; it is shown only now`,
    );
    return 0;
  }
  if (sub === 'revoke') {
    await api.call('DELETE', `/v1/tokens/${encodeURIComponent(rest[0] ?? '')}`);
    io.out(`token ${rest[0]} revoked in ${region.name}`);
    return 0;
  }
  const rows: string[][] = [['TOKEN ID', 'ROLE', 'NAME', 'CREATED']];
  for (let cursor: string | undefined, first = true; first || cursor; first = false) {
    const page = (await api.call(
      'GET',
      `/v1/tokens?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    )) as { items: TokenView[]; nextCursor?: string };
    for (const t of page.items) rows.push([t.tokenId, t.role, t.name, t.createdAt]);
    cursor = page.nextCursor;
  }
  for (const line of table(rows)) io.out(line);
  return 0;
};
