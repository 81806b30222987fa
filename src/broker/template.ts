// biome-ignore-all lint/suspicious/noTemplateCurlyInString: policy variables are written ${…}, as in AWS IoT policies
import type { PolicyDocument } from '../registry/index.js';

/** Retained QoS1 topic of the failover notice (`{activeRegion, epoch, at}`). */
export const FAILOVER_NOTICE_TOPIC = '$iotdr/notices/failover';

const THING = '${iot:Connection.Thing.ThingName}';

/**
 * The policy a device gets by default: connect with its thing name as client id; publish and
 * receive under `devices/<thing>/`; publish its shadow requests (`get`, `update`, `delete`) and
 * receive the shadow's replies; subscribe to and receive the failover notice and its commands.
 * Attach it to the device certificate (or list it on a device token) after
 * `PUT /v1/policies/<name>` with this document.
 */
export function DEVICE_POLICY_TEMPLATE(): PolicyDocument {
  const shadow = `$iotdr/things/${THING}/shadow`;
  const own = [`devices/${THING}`, `devices/${THING}/*`];
  // The replies (accepted, rejected, delta, documents) are the platform's word: a device that could
  // publish them would tell its own apps, or another session of itself, what the shadow holds.
  const requests = ['get', 'update', 'delete'].map((op) => `${shadow}/${op}`);
  // Exact topics only: what a device receives is its own (docs/broker.md, "Workers and hosts").
  const inbound = [`${shadow}/*`, FAILOVER_NOTICE_TOPIC, `$iotdr/things/${THING}/commands`];
  return {
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: ['iot:Connect'], Resource: [`client/${THING}`] },
      {
        Effect: 'Allow',
        Action: ['iot:Publish'],
        Resource: [...own, ...requests, `$iotdr/things/${THING}/commands/*/reply`].map((t) => `topic/${t}`),
      },
      {
        Effect: 'Allow',
        Action: ['iot:Subscribe'],
        Resource: [...own, ...inbound].map((t) => `topicfilter/${t}`),
      },
      { Effect: 'Allow', Action: ['iot:Receive'], Resource: [...own, ...inbound].map((t) => `topic/${t}`) },
    ],
  };
}
