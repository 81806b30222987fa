export { REGISTRY_ROUTES } from './contracts.js';
export { CHANGES_PAGE, CHANGES_WAIT_MS, changeSchema, entitySchema } from './schemas.js';
export { buildRegistryApi, type RegistryApiOptions, regionMetrics } from './server.js';
