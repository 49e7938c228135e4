// What every world shares: plugin info, configuration errors, prompts, and
// the glue of the `meta` export.
import { config, log } from './host.js';

/** Thrown by `checkConfig`: the host refuses the plugin and names `field`. */
export class ConfigError extends Error {
  constructor(message, field) {
    super(message);
    this.field = field;
  }
}

export const Prompt = {
  text: (text) => ({ tag: 'text', val: text }),
  messages: (messages) => ({ tag: 'messages', val: messages }),
  tokenIds: (ids) => ({ tag: 'token-ids', val: Uint32Array.from(ids) }),
};

/** An exception as the contract's error text, its stack logged at debug. */
export function failure(what, e) {
  log.debug(`${what} threw: ${e && e.stack ? e.stack : e}`);
  return e instanceof Error ? e.message : String(e);
}

export function meta(plugin) {
  return {
    info: () => plugin.info(),
    checkConfig() {
      let value;
      try {
        value = JSON.parse(config.raw());
      } catch (e) {
        throw { field: undefined, message: `configuration is not valid JSON: ${e.message}` };
      }
      try {
        plugin.checkConfig?.(value);
      } catch (e) {
        throw { field: e instanceof ConfigError ? e.field : undefined, message: failure('checkConfig', e) };
      }
    },
  };
}
