// {{name}}: a Barrage dataset: a prompt per line of each input file.
// Blank lines and lines starting with `#` are passed over; a line longer
// than `max_chars`, or with a control character (binary junk, not text),
// is skipped and reported with its file and line.
// Settings: `output_tokens` (each request's output length), `max_chars`
// (default 20000), `shuffle` (order the prompts by the run's seed).
import { ConfigError, config, random, tokenizer } from './barrage-plugin/index.js';
import { Dataset, DatasetError, Sample, exportDataset, files } from './barrage-plugin/dataset.js';

const SETTINGS = {
  output_tokens: (v) => Number.isInteger(v) && v >= 0 && v < 2 ** 32,
  max_chars: (v) => Number.isInteger(v) && v >= 0,
  shuffle: (v) => typeof v === 'boolean',
};

// The first control character (Unicode's Cc, as Rust's char::is_control;
// a tab is text) as [column from 1, code point], or undefined.
function controlAt(line) {
  let column = 0;
  for (const c of line) {
    column++;
    const code = c.codePointAt(0);
    if (code !== 0x09 && (code < 0x20 || (code >= 0x7f && code <= 0x9f))) return [column, code];
  }
  return undefined;
}

export class Plugin extends Dataset {
  info() {
    return { name: '{{name}}', version: '0.1.0', description: 'a prompt per line of each input file' };
  }

  checkConfig(settings) {
    for (const [key, value] of Object.entries(settings)) {
      if (!(key in SETTINGS)) throw new ConfigError(`unknown field \`${key}\`, expected one of ${Object.keys(SETTINGS).join(', ')}`, key);
      if (!SETTINGS[key](value)) throw new ConfigError(`invalid value ${JSON.stringify(value)} for \`${key}\``, key);
    }
  }

  *samples() {
    const settings = config.value();
    const maxChars = settings.max_chars ?? 20000;
    const prompts = [];
    const skipped = [];
    for (const name of files.names()) {
      let lines;
      try {
        lines = [...files.lines(name)];
      } catch (e) {
        throw new DatasetError(`not UTF-8: ${e.message}`, name);
      }
      for (const [number, line] of lines) {
        if (line.trim() === '' || line.startsWith('#')) continue;
        const control = controlAt(line);
        if (control !== undefined) {
          const [column, code] = control;
          const hex = code.toString(16).toUpperCase().padStart(4, '0');
          skipped.push(new DatasetError(`a control character (U+${hex}) at column ${column}: not text`, name, number));
          continue;
        }
        if (Array.from(line).length > maxChars) {
          skipped.push(new DatasetError(`a prompt of more than ${maxChars} characters (max_chars)`, name, number));
          continue;
        }
        prompts.push(line);
      }
    }
    if (settings.shuffle) {
      // Fisher-Yates on the run's seeded stream: the same seed, the same order.
      for (let i = prompts.length - 1; i > 0; i--) {
        const j = Number(random.nextU64() % BigInt(i + 1));
        [prompts[i], prompts[j]] = [prompts[j], prompts[i]];
      }
    }
    yield* skipped;
    for (const [id, prompt] of prompts.entries()) {
      yield { ...Sample.text(id, prompt), promptTokens: tokenizer.count(prompt), outputTokens: settings.output_tokens };
    }
  }
}

// componentize-js finds the world's exports under these names.
export const { meta, datasetSource } = exportDataset(new Plugin());
