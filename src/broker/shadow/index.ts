export { parseRequestTopic, SHADOW_TOPIC_PREFIX, shadowTopic } from './messages.js';
export { shadowRoutes } from './routes.js';
export {
  type InboundMessage as ShadowInboundMessage,
  type ShadowPublish,
  ShadowTopics,
  type ShadowTopicsOptions,
} from './topics.js';
