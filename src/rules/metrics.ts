import { Counter, Gauge, type Registry } from 'prom-client';

export interface RuleMetrics {
  matches: Counter<'rule'>;
  actionFailures: Counter<'rule' | 'action'>;
  errors: Counter<'rule' | 'reason'>;
  deadLetters: Counter<'rule'>;
  deadLettersStored: Gauge;
  deliveriesInFlight: Gauge;
  httpRefused: Counter<'rule'>;
}

export function ruleMetrics(registry: Registry): RuleMetrics {
  return {
    matches: new Counter({
      name: 'iotdr_rule_matches_total',
      help: 'Messages that matched a rule (enabled rules only)',
      labelNames: ['rule'] as const,
      registers: [registry],
    }),
    actionFailures: new Counter({
      name: 'iotdr_rule_action_failures_total',
      help: 'Rule actions that failed (an HTTP action counts once per failed delivery, after its retries)',
      labelNames: ['rule', 'action'] as const,
      registers: [registry],
    }),
    errors: new Counter({
      name: 'iotdr_rule_errors_total',
      help: 'Messages a rule could not process (select on a non-JSON payload, missing thing name, republish depth)',
      labelNames: ['rule', 'reason'] as const,
      registers: [registry],
    }),
    deadLetters: new Counter({
      name: 'iotdr_rule_dead_letters_total',
      help: 'HTTP deliveries dead-lettered after their last attempt',
      labelNames: ['rule'] as const,
      registers: [registry],
    }),
    deadLettersStored: new Gauge({
      name: 'iotdr_rule_dead_letters',
      help: 'Dead letters currently stored',
      registers: [registry],
    }),
    deliveriesInFlight: new Gauge({
      name: 'iotdr_rule_http_deliveries_in_flight',
      help: 'HTTP deliveries being attempted or waiting to retry',
      registers: [registry],
    }),
    httpRefused: new Counter({
      name: 'iotdr_rule_http_refused_total',
      help: 'HTTP deliveries refused before connecting: the address is not globally reachable and not in ruleHttp.allowedNetworks',
      labelNames: ['rule'] as const,
      registers: [registry],
    }),
  };
}
