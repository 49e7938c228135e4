// {{name}}: a Barrage reporter: `{{name}}.txt`, a line per stage (requests
// sent, succeeded and failed, TTFT p50) and the requests by status, counted
// from the per-request records.
import { OutputFile, Reporter, exportReporter, records } from './barrage-plugin/reporter.js';

export class Plugin extends Reporter {
  info() {
    return { name: '{{name}}', version: '0.1.0', description: 'stages and statuses as text' };
  }

  wantsRecords() {
    return true;
  }

  render(input) {
    let out = '';
    for (const stage of input.summary.stages ?? []) {
      const p50 = stage.ttft_ms?.p50;
      const ttft = typeof p50 === 'number' ? `${p50.toFixed(3)} ms` : '-';
      out += `stage ${stage.label ?? '?'}: ${stage.sent ?? 0} sent, ${stage.succeeded ?? 0} succeeded, ${stage.failed ?? 0} failed, TTFT p50 ${ttft}\n`;
    }
    const byStatus = new Map();
    for (const record of records.each()) {
      const status = record.status ?? '?';
      byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
    }
    for (const status of [...byStatus.keys()].sort()) out += `${status}: ${byStatus.get(status)}\n`;
    return [OutputFile.text('{{name}}.txt', out)];
  }
}

// componentize-js finds the world's exports under these names.
export const { meta, reportRenderer } = exportReporter(new Plugin());
