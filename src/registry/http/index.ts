export { buildRegistryApi, type RegistryApiOptions } from './server.js';
