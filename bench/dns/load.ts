/**
 * A UDP load generator: `inflight` queries outstanding at all times, each answered one replaced by
 * the next. Every answer is checked (NOERROR, AA, one A record with the expected address), so a
 * figure only counts real answers. A query unanswered after `lossTimeoutMs` is counted lost and
 * replaced, so one dropped datagram does not stall a slot.
 */
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import dnsPacket from 'dns-packet';

export interface LoadOptions {
  port: number;
  name: string;
  expected: string;
  inflight: number;
  warmupMs: number;
  durationMs: number;
  lossTimeoutMs?: number;
  /** Process id of the server, to read its CPU time from /proc (Linux). */
  serverPid?: number;
}

export interface LoadResult {
  answered: number;
  lost: number;
  wrong: number;
  seconds: number;
  qps: number;
  p50Ms: number;
  p99Ms: number;
  /** Server CPU time over the timed part / wall time: 1 = one core busy; undefined without /proc. */
  serverCpu: number | undefined;
}

/** utime + stime of a process in seconds, from /proc/<pid>/stat (clock ticks of 1/100 s on Linux). */
function cpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0;
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const template = dnsPacket.encode({ type: 'query', id: 0, questions: [{ name: options.name, type: 'A' }] });
  const sentAt = new Map<number, bigint>();
  let nextId = 0;
  let measuring = false;
  let stopping = false;
  let answered = 0;
  let lost = 0;
  let wrong = 0;
  const latencies: number[] = [];

  const send = (): void => {
    if (stopping) return;
    // Ids cycle through 16 bits; `inflight` is far below 65536, so an id is never reused while outstanding.
    nextId = (nextId + 1) & 0xffff;
    const packet = Buffer.from(template);
    packet.writeUInt16BE(nextId, 0);
    sentAt.set(nextId, process.hrtime.bigint());
    socket.send(packet, options.port, '127.0.0.1');
  };

  socket.on('message', (message) => {
    const id = message.readUInt16BE(0);
    const start = sentAt.get(id);
    if (start === undefined) return;
    sentAt.delete(id);
    if (measuring) {
      const r = dnsPacket.decode(message) as ReturnType<typeof dnsPacket.decode> & { rcode: string };
      const a = r.answers?.[0];
      if (
        r.rcode !== 'NOERROR' ||
        !r.flag_aa ||
        r.answers?.length !== 1 ||
        a?.type !== 'A' ||
        a.data !== options.expected
      ) {
        wrong += 1;
      } else {
        answered += 1;
        latencies.push(Number(process.hrtime.bigint() - start) / 1e6);
      }
    }
    send();
  });

  const lossTimeout = BigInt((options.lossTimeoutMs ?? 500) * 1e6);
  const sweep = setInterval(() => {
    const now = process.hrtime.bigint();
    for (const [id, at] of sentAt) {
      if (now - at > lossTimeout) {
        sentAt.delete(id);
        if (measuring) lost += 1;
        send();
      }
    }
  }, 50);

  for (let i = 0; i < options.inflight; i++) send();
  await new Promise((resolve) => setTimeout(resolve, options.warmupMs));
  measuring = true;
  const cpuBefore = cpuSeconds(options.serverPid);
  const started = process.hrtime.bigint();
  await new Promise((resolve) => setTimeout(resolve, options.durationMs));
  measuring = false;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpuAfter = cpuSeconds(options.serverPid);
  stopping = true;
  clearInterval(sweep);
  socket.close();
  latencies.sort((x, y) => x - y);
  return {
    answered,
    lost,
    wrong,
    seconds,
    qps: answered / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    serverCpu:
      cpuBefore === undefined || cpuAfter === undefined ? undefined : (cpuAfter - cpuBefore) / seconds,
  };
}
