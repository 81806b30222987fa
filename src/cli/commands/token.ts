import { primaryRegion, regionByName } from '../../config/index.js';
import { CNC_OPERATIONS, type CncOperation, ROLES } from '../../http/index.js';
import { REGISTRY_ROUTES } from '../../registry/index.js';
import { apiOf, table } from '../api.js';
import { loadFor, parseCommand, usageError } from '../args.js';
import type { CliIo, Command } from '../io.js';

const USAGE = `usage: iotdr token <subcommand> [options]

subcommands:
  create --name NAME --role ROLE   make a bearer token; it is printed once, keep it
         [--operations a,b]        a console token limited to these command-and-control
         [--groups g1,g2]          operations (${CNC_OPERATIONS.join(', ')}), thing groups
         [--templates NAME,NAME]   and policy templates it may onboard devices with
                                   (a scoped token without --templates onboards none)
  list                             the tokens of the region (never their secrets)
  revoke TOKEN_ID                  delete a token; it stops working at once

options:
  --region NAME    the region to talk to (default: the primary)
  --config FILE    configuration file
  -h, --help       show this help

roles: ${ROLES.join(', ')}. The admin token of <state>/secrets/admin.token authorizes the call.`;

const SPEC = {
  name: 'token',
  usage: USAGE,
  options: {
    name: { type: 'string' },
    role: { type: 'string' },
    operations: { type: 'string' },
    groups: { type: 'string' },
    templates: { type: 'string' },
    region: { type: 'string' },
  },
  positionals: true,
} as const;

export const tokenCommand: Command = async (argv, io: CliIo) => {
  const parsed = parseCommand(SPEC, argv, io);
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  const [sub, ...rest] = positionals;
  const bad = (message: string) => usageError(SPEC, io, message);
  const connect = async () => {
    const loaded = await loadFor(io, values);
    const region = values.region ? regionByName(loaded.config, values.region) : primaryRegion(loaded.config);
    return { region, api: await apiOf(loaded, region) };
  };
  if (sub === 'create') {
    const { name } = values;
    const role = ROLES.find((r) => r === values.role);
    if (!name) return bad('create needs --name');
    if (!role) return bad(`create needs --role, one of ${ROLES.join(', ')}`);
    const list = (v: string) =>
      v
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean);
    const scope = {
      // The region checks each operation name and names the one it does not know.
      ...(values.operations ? { operations: list(values.operations) as CncOperation[] } : {}),
      ...(values.groups ? { thingGroups: list(values.groups) } : {}),
      ...(values.templates ? { templates: list(values.templates) } : {}),
    };
    const { region, api } = await connect();
    const made = await api.request(REGISTRY_ROUTES.createToken, {
      body: { name, role, ...(Object.keys(scope).length > 0 ? { scope } : {}) },
    });
    io.out(made.token);
    io.err(
      `token ${made.info.tokenId} (${made.info.role}, '${made.info.name}') made in ${region.name}; it is shown only now`,
    );
    return 0;
  }
  if (sub === 'revoke') {
    const [id] = rest;
    if (id === undefined || rest.length !== 1) return bad('revoke needs exactly one TOKEN_ID');
    const { region, api } = await connect();
    await api.request(REGISTRY_ROUTES.deleteToken, { params: { id } });
    io.out(`token ${id} revoked in ${region.name}`);
    return 0;
  }
  if (sub !== 'list')
    return bad(sub === undefined ? 'a subcommand is required' : `unknown subcommand '${sub}'`);
  const { api } = await connect();
  const rows: string[][] = [['TOKEN ID', 'ROLE', 'NAME', 'CREATED']];
  for (let cursor: string | undefined, first = true; first || cursor; first = false) {
    const page = await api.request(REGISTRY_ROUTES.listTokens, { query: { limit: 1000, cursor } });
    for (const t of page.items) rows.push([t.tokenId, t.role, t.name, t.createdAt]);
    cursor = page.nextCursor;
  }
  for (const line of table(rows)) io.out(line);
  return 0;
};
