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

/**
 * A chat message. `content` is a string (one text part) or a list of
 * parts: `{ tag: 'text', val }`, or `{ tag: 'image' | 'audio', val: {
 * mediaType, source: { tag: 'inline', val: Uint8Array } | { tag: 'url',
 * val }, tokens } }`.
 */
export const message = (role, content, toolCalls = [], toolCallId = undefined) => ({
  role,
  content: typeof content === 'string' ? [{ tag: 'text', val: content }] : content,
  toolCalls,
  toolCallId,
});

/** A message's text parts, joined by newlines. */
export const messageText = (m) =>
  m.content
    .filter((p) => p.tag === 'text')
    .map((p) => p.val)
    .join('\n');

export const Prompt = {
  text: (text) => ({ tag: 'text', val: text }),
  /** Messages, each a `message(...)` (or `{ role, content: 'text' }`, made one). */
  messages: (messages) => ({
    tag: 'messages',
    val: messages.map((m) => (typeof m.content === 'string' ? message(m.role, m.content) : m)),
  }),
  tokenIds: (ids) => ({ tag: 'token-ids', val: Uint32Array.from(ids) }),
  inputs: (inputs) => ({ tag: 'inputs', val: inputs }),
  rerank: (query, documents) => ({ tag: 'rerank', val: { query, documents } }),
};

/** An exception as the contract's error text, its stack logged at debug. */
export function failure(what, e) {
  log.debug(`${what} threw: ${e && e.stack ? e.stack : e}`);
  return e instanceof Error ? e.message : String(e);
}

export function meta(plugin) {
  return {
    info: () => ({ secrets: [], ...plugin.info() }),
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
