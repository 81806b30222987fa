// biome-ignore-all lint/suspicious/noTemplateCurlyInString: policy variables are written ${…}, as in AWS IoT policies
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closed,
  connect,
  connectDevice,
  type Device,
  endAll,
  eventually,
  nextMessage,
  provisionDevice,
  startBroker,
  startRegistry,
  subscribe,
  type TestBroker,
  type TestRegistry,
} from './support.js';

/**
 * Which thing a connection acts as, and what it inherits from its thing groups, as AWS IoT Core
 * decides them, over real mutual-TLS MQTT connections.
 */

/** Any client id may connect; the rest is allowed only under the thing's own topics. */
const OWN_TOPICS = {
  Version: '2012-10-17',
  Statement: [
    { Effect: 'Allow', Action: 'iot:Connect', Resource: 'client/*' },
    {
      Effect: 'Allow',
      Action: ['iot:Publish', 'iot:Receive'],
      Resource: 'topic/things/${iot:Connection.Thing.ThingName}/*',
    },
    {
      Effect: 'Allow',
      Action: 'iot:Subscribe',
      Resource: 'topicfilter/things/${iot:Connection.Thing.ThingName}/*',
    },
  ],
};

/** Connect only: anything else must come from a group's policy. */
const CONNECT_ONLY = {
  Version: '2012-10-17',
  Statement: [
    { Effect: 'Allow', Action: 'iot:Connect', Resource: 'client/${iot:Connection.Thing.ThingName}' },
  ],
};

const GROUP_TOPICS = {
  Version: '2012-10-17',
  Statement: [
    { Effect: 'Allow', Action: ['iot:Publish', 'iot:Receive'], Resource: 'topic/group/*' },
    { Effect: 'Allow', Action: 'iot:Subscribe', Resource: 'topicfilter/group/*' },
  ],
};

describe('broker: thing association and thing group policies', () => {
  let registry: TestRegistry;
  let broker: TestBroker;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    registry = await startRegistry();
    broker = await startBroker(registry, { tokenListener: { port: 0 } });
    await registry.service.putPolicy('group-topics', { policyDocument: GROUP_TOPICS });
  });
  afterAll(async () => {
    await endAll(clients);
    await broker?.close();
    await registry?.close();
  });

  async function open(device: Pick<Device, 'certPem' | 'keyPem'>, clientId: string): Promise<MqttClient> {
    const client = await connectDevice(broker.port, registry.ca, device, clientId);
    clients.push(client);
    return client;
  }

  function thingOf(clientId: string): string | null | undefined {
    return broker.broker.connections().find((c) => c.clientId === clientId)?.thing;
  }

  // https://docs.aws.amazon.com/iot/latest/developerguide/thing-policy-variables.html: "If
  // non-exclusive thing association is in place, when you're replacing thing names with thing
  // policy variables, the value of clientId in the MQTT connect message […] must exactly match the
  // thing name."
  it('resolves ${iot:Connection.Thing.ThingName} for a non-exclusive thing when the client id is its name', async () => {
    const device = await provisionDevice(registry.service, 'assoc-1', OWN_TOPICS);
    const client = await open(device, 'assoc-1');
    expect(thingOf('assoc-1')).toBe('assoc-1');
    expect(await subscribe(client, 'things/assoc-1/#')).toEqual([1]);
    const got = nextMessage(client, 'things/assoc-1/state');
    await client.publishAsync('things/assoc-1/state', 'on', { qos: 1 });
    expect((await got).toString()).toBe('on');
  });

  // The same page: with another client id, no thing is associated, so no thing variable resolves.
  it('resolves no thing for a non-exclusive attachment when the client id is another name', async () => {
    const device = await provisionDevice(registry.service, 'assoc-2', OWN_TOPICS);
    const client = await open(device, 'not-assoc-2');
    expect(thingOf('not-assoc-2')).toBeNull();
    expect(await subscribe(client, 'things/assoc-2/#')).toEqual([128]);
    // Also with the certificate's only thing: NON_EXCLUSIVE_THING is not "exactly one thing".
    expect(await registry.service.listCertificateThings(device.certificateId)).toEqual(['assoc-2']);
    const gone = closed(client);
    client.publish('things/assoc-2/state', 'on', { qos: 1 });
    await gone;
    expect(broker.logs.refusals('publish_denied').at(-1)?.detail).toMatch(/things\/assoc-2\/state/);
  });

  // https://docs.aws.amazon.com/iot/latest/developerguide/exclusive-thing.html: "If your client ID
  // doesn't match the thing's name in the registry, you can establish this association by attaching
  // an X.509 certificate to your IoT thing, exclusively."
  it('resolves the exclusive thing whatever the client id', async () => {
    const device = await provisionDevice(registry.service, 'assoc-ex', OWN_TOPICS);
    await registry.service.attachCertificate('assoc-ex', device.certificateId, 'EXCLUSIVE_THING');
    const client = await open(device, 'serial-0042');
    expect(thingOf('serial-0042')).toBe('assoc-ex');
    expect(await subscribe(client, 'things/assoc-ex/#')).toEqual([1]);
    const got = nextMessage(client, 'things/assoc-ex/state');
    await client.publishAsync('things/assoc-ex/state', 'on', { qos: 1 });
    expect((await got).toString()).toBe('on');

    // Made non-exclusive while connected: the live session loses the thing.
    await registry.service.attachCertificate('assoc-ex', device.certificateId, 'NON_EXCLUSIVE_THING');
    await eventually(() => thingOf('serial-0042') === null, 'the session re-resolved without a thing');
    expect(await subscribe(client, 'things/assoc-ex/#')).toEqual([128]);
  });

  // An exclusive attachment and another one can only meet when two regions attached at once (each
  // refuses it locally): the certificate then has no exclusive thing, and the client id decides.
  it('lets the client id decide when a replicated attachment joined an exclusive one', async () => {
    const device = await provisionDevice(registry.service, 'assoc-x1', OWN_TOPICS);
    await registry.service.attachCertificate('assoc-x1', device.certificateId, 'EXCLUSIVE_THING');
    await registry.service.putThing('assoc-x2', {});
    const key = `assoc-x2|${device.certificateId}`;
    const peerDoc = {
      thingName: 'assoc-x2',
      certificateId: device.certificateId,
      attachedAt: '2026-01-01T00:00:00.000Z',
      thingPrincipalType: 'NON_EXCLUSIVE_THING',
    };
    await registry.service.transaction((tx) =>
      registry.service.writeEntity(tx, 'thing-principal', key, device.certificateId, peerDoc, undefined),
    );
    await open(device, 'serial-x');
    expect(thingOf('serial-x')).toBeNull();
    await open(device, 'assoc-x2');
    expect(thingOf('assoc-x2')).toBe('assoc-x2');
  });

  // https://docs.aws.amazon.com/iot/latest/developerguide/thing-groups.html: "You can attach a
  // policy to a parent group and it is inherited by its child groups, and by all of the things in
  // the group and in its child groups." And: "policies are dynamically applied to the thing when
  // group memberships change".
  it("lets a group's thing publish by the group's policy, and takes it away from the live session when the thing leaves", async () => {
    await registry.service.putThingGroup('fleet-a', {});
    await registry.service.attachGroupPolicy('fleet-a', 'group-topics');
    const device = await provisionDevice(registry.service, 'grp-1', CONNECT_ONLY);
    await registry.service.addThingToGroup('fleet-a', 'grp-1');
    const client = await open(device, 'grp-1');
    expect(await subscribe(client, 'group/#')).toEqual([1]);
    const got = nextMessage(client, 'group/news');
    await client.publishAsync('group/news', 'hello', { qos: 1 });
    expect((await got).toString()).toBe('hello');

    await registry.service.removeThingFromGroup('fleet-a', 'grp-1');
    await eventually(
      async () => (await subscribe(client, 'group/more/#'))[0] === 128,
      'the group policy gone',
    );
    const gone = closed(client);
    client.publish('group/news', 'again', { qos: 1 });
    await gone;
  });

  // A device token names its thing, so that thing's groups apply as for a certificate.
  it("gives a token listener session its thing's group policies too", async () => {
    await registry.service.putPolicy('connect-only', { policyDocument: CONNECT_ONLY });
    await registry.service.putThing('tok-1', {});
    await registry.service.putThingGroup('fleet-t', {});
    await registry.service.attachGroupPolicy('fleet-t', 'group-topics');
    await registry.service.addThingToGroup('fleet-t', 'tok-1');
    const { token } = await registry.service.createDeviceToken('tok-1', ['connect-only']);
    const port = broker.addresses.token?.port;
    if (port === undefined) throw new Error('no token listener');
    const client = await connect({
      port,
      ca: registry.ca.certificatePem,
      clientId: 'tok-1',
      username: 'tok-1',
      password: token,
    });
    clients.push(client);
    expect(await subscribe(client, 'group/#')).toEqual([1]);
    await registry.service.removeThingFromGroup('fleet-t', 'tok-1');
    await eventually(async () => (await subscribe(client, 'group/t/#'))[0] === 128, 'the group policy gone');
  });

  it("reaches a connected thing of a child group when a policy is attached to the parent, and not another thing's session", async () => {
    await registry.service.putThingGroup('site', {});
    await registry.service.putThingGroup('site-floor', { parentGroupName: 'site' });
    const inside = await provisionDevice(registry.service, 'grp-in', CONNECT_ONLY);
    const outside = await provisionDevice(registry.service, 'grp-out', CONNECT_ONLY);
    await registry.service.addThingToGroup('site-floor', 'grp-in');
    const a = await open(inside, 'grp-in');
    const b = await open(outside, 'grp-out');
    expect(await subscribe(a, 'group/#')).toEqual([128]);

    await registry.service.attachGroupPolicy('site', 'group-topics');
    await eventually(async () => (await subscribe(a, 'group/#'))[0] === 1, 'the inherited policy');
    expect(await subscribe(b, 'group/#')).toEqual([128]);

    await registry.service.detachGroupPolicy('site', 'group-topics');
    await eventually(async () => (await subscribe(a, 'group/x/#'))[0] === 128, 'the policy detached');
  });
});
