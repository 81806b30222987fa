import { Resolver } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { CNC_ROUTES, FINAL_COMMAND_STATES } from '../../commands/index.js';
import { baseUrl, IotdrError, writeFileAtomic } from '../../common/index.js';
import {
  adminTokenPath,
  caCertPath,
  type LoadedConfig,
  nameServersOf,
  primaryRegion,
} from '../../config/index.js';
import { ApiClient, type SuccessOf } from '../../http/index.js';
import { progressBar, table } from '../api.js';
import { loadFor, parseCommand, usageError, type Values } from '../args.js';
import type { CliIo, Command } from '../io.js';

const USAGE = `usage: iotdr devices <subcommand> [options]

Command and control, through api.<zone> as a console reaches it (the name resolved by the
control plane's DNS, so it follows a failover), or --api URL.

subcommands:
  onboard --file FILE [--template NAME] [--groups a,b] [--partial] [--out DIR]
                                  bulk onboarding from a CSV (header thingName,groups,attributes,csr)
                                  or JSON ({template, devices: [...]}) file: progress while it runs,
                                  a report at the end; the keys iotdr made go to DIR (mode 0600)
  onboard --thing NAME --template NAME [--groups a,b] [--out DIR]
                                  one device; its certificate and key go to DIR
  show THING                      the device: groups, certificates, state
  suspend THING | resume THING    certificates INACTIVE (sessions closed everywhere) / ACTIVE again
  decommission THING              remove everything the device owned
  command THING --name NAME [--payload JSON] [--timeout-ms N]
                                  send a command and wait for the device's answer

options:
  --api URL        command-and-control base URL (default: api.<zone> resolved now)
  --config FILE    configuration file
  -h, --help       show this help

With --partial, the valid lines of a list are onboarded and the others reported; without it, a
list with any bad line is refused whole (every line and field named) and nothing is onboarded.
The admin token of <state>/secrets/admin.token authorizes the calls. Exit 0 on success, 1 when
the platform refused or a device failed, 2 on a usage error.`;

/** How often a running job is asked for its progress, ms. */
const POLL_MS = 250;
/** A progress line at least this often, ms, even when the count did not move. */
const PROGRESS_EVERY_MS = 2000;

const SPEC = {
  name: 'devices',
  usage: USAGE,
  options: {
    file: { type: 'string' },
    thing: { type: 'string' },
    template: { type: 'string' },
    groups: { type: 'string' },
    partial: { type: 'boolean' },
    out: { type: 'string' },
    name: { type: 'string' },
    payload: { type: 'string' },
    'timeout-ms': { type: 'string' },
    api: { type: 'string' },
  },
  positionals: true,
} as const;
type Options = Values<(typeof SPEC)['options']>;

type Keys = SuccessOf<typeof CNC_ROUTES.takeKeys>['keys'];

/** The command-and-control API: `--api`, or api.<zone> resolved by the control DNS. */
async function cncApi(loaded: LoadedConfig, given: string | undefined, io: CliIo): Promise<ApiClient> {
  const token = (
    await readFile(adminTokenPath(loaded.stateDir), 'utf8').catch((error) => {
      throw new IotdrError(
        'IOTDR_CLI_NO_ADMIN_TOKEN',
        `cannot read the admin token: ${(error as Error).message}`,
      );
    })
  ).trim();
  const ca = await readFile(caCertPath(loaded.stateDir), 'utf8').catch(() => undefined);
  const { config } = loaded;
  if (given) return new ApiClient('api', given.replace(/\/+$/, ''), token, ca);
  const name = `${config.names.api}.${config.zone}`;
  let address: string | undefined;
  try {
    const resolver = new Resolver({ timeout: 1000, tries: 2 });
    resolver.setServers(nameServersOf(config));
    [address] = await resolver.resolve4(name);
  } catch (error) {
    io.err(`iotdr devices: cannot resolve ${name} (${(error as Error).message}); using the primary region`);
  }
  const region = config.regions.find((r) => r.address === address) ?? primaryRegion(config);
  return new ApiClient(
    `${name} (${region.name})`,
    baseUrl(region.address, region.cnc.port, region.cnc.tls ? 'https' : 'http'),
    token,
    ca,
  );
}

export const devicesCommand: Command = async (argv, io) => {
  const parsed = parseCommand(SPEC, argv, io);
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  const [sub, thing, ...extra] = positionals;
  const bad = (message: string) => usageError(SPEC, io, message);
  const needsThing = ['show', 'suspend', 'resume', 'decommission', 'command'];
  if (sub === 'onboard') {
    if (thing !== undefined) return bad('onboard takes --file FILE or --thing NAME, not a positional name');
    if (!values.file === !values.thing) return bad('onboard needs --file FILE or --thing NAME (one of them)');
    if (values.thing && !values.template) return bad('onboard --thing needs --template NAME');
  } else if (sub !== undefined && needsThing.includes(sub)) {
    if (!thing || extra.length > 0) return bad(`${sub} needs exactly one THING`);
    if (sub === 'command' && !values.name) return bad('command needs --name NAME');
  } else {
    return bad(sub === undefined ? 'a subcommand is required' : `unknown subcommand '${sub}'`);
  }
  let payload: unknown;
  if (values.payload !== undefined) {
    try {
      payload = JSON.parse(values.payload);
    } catch {
      return bad('--payload must be JSON');
    }
  }
  const loaded = await loadFor(io, values);
  const api = await cncApi(loaded, values.api, io);
  try {
    if (sub === 'onboard' && values.file) return await onboardFile(api, values, io);
    if (sub === 'onboard') return await onboardOne(api, values, io);
    const params = { thing: thing ?? '' };
    if (sub === 'show') {
      const d = await api.request(CNC_ROUTES.device, { params });
      io.out(`${d.thingName}: ${d.state}; groups ${d.groups.join(', ') || '-'}`);
      for (const line of table([
        ['CERTIFICATE', 'STATUS', 'POLICIES'],
        ...d.certificates.map((c) => [c.certificateId, c.status, c.policies.join(', ')]),
      ]))
        io.out(line);
      return 0;
    }
    if (sub === 'suspend' || sub === 'resume') {
      const r = await api.request(sub === 'suspend' ? CNC_ROUTES.suspend : CNC_ROUTES.resume, { params });
      io.out(
        `${thing}: ${r.certificates.map((c) => `${c.certificateId.slice(0, 12)}… ${c.status}`).join(', ') || 'no certificate'}`,
      );
      return 0;
    }
    if (sub === 'decommission') {
      const r = await api.request(CNC_ROUTES.decommission, { params });
      io.out(
        `${thing} decommissioned: ${r.certificates.length} certificate(s), ${r.groups.length} membership(s), ${r.commands} command(s) removed`,
      );
      return 0;
    }
    return await sendCommand(api, thing ?? '', values, payload, io);
  } catch (error) {
    if (!(error instanceof IotdrError)) throw error;
    io.err(`iotdr devices: ${error.message}`);
    for (const issue of error.issues.slice(0, 50)) io.err(`  ${issue.path}: ${issue.message}`);
    if (error.issues.length > 50) io.err(`  … and ${error.issues.length - 50} more`);
    return 1;
  }
};

async function onboardOne(api: ApiClient, values: Options, io: CliIo): Promise<number> {
  const made = await api.request(CNC_ROUTES.onboard, {
    body: { thingName: values.thing ?? '', template: values.template ?? '', groups: listOf(values.groups) },
  });
  io.out(`${made.thingName} onboarded, certificate ${made.certificateId}`);
  if (values.out && made.privateKeyPem) {
    await saveKeys(values.out, {
      [made.thingName]: {
        certificateId: made.certificateId,
        certificatePem: made.certificatePem,
        privateKeyPem: made.privateKeyPem,
      },
    });
    io.out(`certificate and key in ${values.out}/${made.thingName}.{cert,key}.pem`);
  } else if (made.privateKeyPem) {
    io.err('the private key was made here and is shown once: pass --out DIR to keep it');
  }
  return 0;
}

async function onboardFile(api: ApiClient, values: Options, io: CliIo): Promise<number> {
  const file = values.file ?? '';
  const text = await readFile(file, 'utf8');
  const csv = extname(file).toLowerCase() !== '.json';
  let submitted: SuccessOf<typeof CNC_ROUTES.submitJob>;
  if (csv) {
    if (!values.template) throw new IotdrError('IOTDR_CLI_USAGE', 'a CSV list needs --template NAME');
    submitted = await api.request(CNC_ROUTES.submitJob, {
      query: {
        template: values.template,
        groups: values.groups || undefined,
        partial: values.partial ? 'true' : undefined,
      },
      raw: { text, contentType: 'text/csv' },
    });
  } else {
    const body = JSON.parse(text) as Record<string, unknown>;
    submitted = await api.request(CNC_ROUTES.submitJob, {
      body: {
        ...body,
        ...(values.template ? { template: values.template } : {}),
        ...(values.partial ? { partial: true } : {}),
      },
    });
  }
  io.out(`job ${submitted.jobId}: ${submitted.total} device(s) to onboard through ${api.name}`);
  // Until the first poll, the job as submitted: its keys are not known to be there yet.
  let job: SuccessOf<typeof CNC_ROUTES.submitJob> & { keysAvailable?: boolean } = submitted;
  let shown = -1;
  let shownAt = 0;
  while (job.state === 'running') {
    await new Promise((r) => setTimeout(r, POLL_MS));
    job = await api.request(CNC_ROUTES.job, { params: { id: submitted.jobId } });
    const now = Date.now();
    if (job.done !== shown && (now - shownAt >= 1000 || job.state !== 'running')) {
      io.out(`  ${progressBar(job.done, job.total)} ${job.done}/${job.total}, ${job.failed} failed`);
      shown = job.done;
      shownAt = now;
    } else if (now - shownAt >= PROGRESS_EVERY_MS) {
      io.out(`  ${progressBar(job.done, job.total)} ${job.done}/${job.total} (waiting)`);
      shownAt = now;
    }
  }
  io.out('');
  for (const line of table([
    ['JOB', 'STATE', 'TOTAL', 'CREATED', 'FAILED', 'REJECTED'],
    [
      job.jobId,
      job.state,
      String(job.total),
      String(job.succeeded),
      String(job.failed),
      String(job.rejected.length),
    ],
  ]))
    io.out(line);
  const failures = job.results.filter((r) => r.status !== 'created');
  if (failures.length > 0) {
    io.out('');
    for (const line of table([
      ['LINE', 'DEVICE', 'ERROR'],
      ...failures.slice(0, 50).map((r) => [String(r.line), r.thingName, r.error ?? r.status]),
    ]))
      io.out(line);
  }
  for (const r of job.rejected.slice(0, 50)) io.out(`rejected ${r}`);
  if (job.keysAvailable) {
    if (values.out) {
      const { keys } = await api.request(CNC_ROUTES.takeKeys, { params: { id: job.jobId } });
      await saveKeys(values.out, keys);
      io.out(`${Object.keys(keys).length} certificate(s) and key(s) in ${values.out}`);
    } else {
      io.err(
        `keys were made for ${job.succeeded} device(s): fetch them once with --out DIR, or POST /v1/onboarding-jobs/${job.jobId}/keys`,
      );
    }
  }
  return job.state === 'succeeded' ? 0 : 1;
}

async function sendCommand(
  api: ApiClient,
  thing: string,
  values: Options,
  payload: unknown,
  io: CliIo,
): Promise<number> {
  const timeoutMs = values['timeout-ms'] === undefined ? undefined : Number(values['timeout-ms']);
  let command = await api.request(CNC_ROUTES.issueCommand, {
    params: { thing },
    body: {
      name: values.name ?? '',
      ...(payload === undefined ? {} : { payload }),
      ...(timeoutMs ? { timeoutMs } : {}),
    },
  });
  const sent = command;
  io.out(`command ${sent.commandId} ${sent.state}`);
  let last = sent.state;
  while (!FINAL_COMMAND_STATES.includes(command.state)) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    command = await api.request(CNC_ROUTES.command, { params: { id: sent.commandId } });
    if (command.state !== last) {
      io.out(
        `command ${sent.commandId} ${command.state}${command.deliveredBy ? ` (by ${command.deliveredBy})` : ''}`,
      );
      last = command.state;
    }
  }
  if (command.result !== null) io.out(JSON.stringify(command.result));
  if (command.error) io.err(command.error);
  return command.state === 'succeeded' ? 0 : 1;
}

/**
 * Each key 0600 and each certificate 0644, set exactly whatever the umask and whatever mode a file
 * of that name had (writeFile keeps an existing file's mode); a directory it makes is 0700.
 */
async function saveKeys(dir: string, keys: Keys): Promise<void> {
  for (const [thing, k] of Object.entries(keys)) {
    await writeFileAtomic(join(dir, `${thing}.cert.pem`), k.certificatePem, { mode: 0o644 });
    await writeFileAtomic(join(dir, `${thing}.key.pem`), k.privateKeyPem, { mode: 0o600 });
  }
}

function listOf(value: string | undefined): string[] {
  return value
    ? value
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : [];
}
