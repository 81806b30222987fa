/**
 * The schema of `iotdr.yaml`: the root assembles each component's section (its schema, defaults
 * and type live in the component's `config.ts`) with the root's own fields and the regions, then
 * checks the rules that span sections. Every message says what would be valid, so a user can fix
 * a field from the message alone.
 */
import type { z } from 'zod';
import { type AnalyticsConfig, analyticsSection } from '../analytics/index.js';
import { type BrokerConfig, brokerSection } from '../broker/index.js';
import { type LogLevel, section } from '../common/index.js';
import { type ControlConfig, controlSection } from '../control/index.js';
import { type DnsConfig, dnsSection } from '../dns/index.js';
import { type EventsConfig, eventsSection } from '../events/index.js';
import { type FailoverConfig, failoverSection } from '../failover/index.js';
import { type HealthConfig, healthSection } from '../health/index.js';
import { type ReplicationConfig, replicationSection } from '../replication/index.js';
import { type RuleConfig, type RuleHttpConfig, ruleHttpSection, rulesSection } from '../rules/index.js';
import { crossFieldIssues } from './cross-field.js';
import {
  apiSection,
  type LinkMode,
  linksSection,
  loggingSection,
  namesSection,
  zoneSchema,
} from './fleet.js';
import { type RegionConfig, regionsSchema } from './region-schema.js';
import { type SupervisionConfig, supervisionSection } from './supervision.js';

/** The parsed, fully-defaulted configuration. Deeply readonly: `parseConfig` returns a frozen object. */
export interface IotdrConfig {
  readonly zone: string;
  readonly names: { readonly mqtt: string; readonly api: string };
  readonly dns: DnsConfig;
  readonly control: ControlConfig;
  readonly analytics: AnalyticsConfig;
  readonly logging: { readonly level: LogLevel };
  readonly api: { readonly bodyLimit: number };
  /** How processes talk to one another: mutual TLS with site certificates, or plain loopback HTTP. */
  readonly links: {
    readonly mode: LinkMode;
    readonly certificateDays: number;
    readonly renewBeforeDays: number;
  };
  readonly regions: readonly RegionConfig[];
  readonly replication: ReplicationConfig;
  readonly broker: BrokerConfig;
  readonly events: EventsConfig;
  readonly health: HealthConfig;
  /** Region-local topic rules, in every region; rules made over the API replicate instead. */
  readonly rules: readonly RuleConfig[];
  /** Where the rules' HTTP actions may connect besides globally reachable addresses. */
  readonly ruleHttp: RuleHttpConfig;
  readonly failover: FailoverConfig;
  readonly supervision: SupervisionConfig;
}

const rootShape = {
  zone: zoneSchema,
  names: namesSection,
  dns: dnsSection,
  control: controlSection,
  analytics: analyticsSection,
  logging: loggingSection,
  api: apiSection,
  links: linksSection,
  regions: regionsSchema,
  replication: replicationSection,
  broker: brokerSection,
  events: eventsSection,
  health: healthSection,
  rules: rulesSection,
  ruleHttp: ruleHttpSection,
  failover: failoverSection,
  supervision: supervisionSection,
};

export const configSchema = section(rootShape).superRefine(
  (config, ctx) => {
    for (const issue of crossFieldIssues(config)) ctx.addIssue({ code: 'custom', ...issue });
  },
  { when: () => true },
);

// The hand-written types are the documentation; this fails to compile if any of them, in any
// component's section, drifts from the schema.
type DeepReadonly<T> = T extends (infer E)[]
  ? readonly DeepReadonly<E>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;
export type _SchemaMatchesTypes = Assert<Same<DeepReadonly<z.output<typeof configSchema>>, IotdrConfig>>;
