// Writing a reporter: give `exportReporter` an object with `render`, and
// export what it returns:
//
//     export const { meta, reportRenderer } = exportReporter(new MyReporter());
//
// `render({ schemaVersion, summary })` gets the run's summary (the same JSON
// as summary.json, parsed) and returns files, paths relative to the results
// directory. A reporter whose `wantsRecords()` is true reads them with
// `records.each()`.
import { failure, meta } from './common.js';

export { records } from './records.js';

export const OutputFile = {
  text: (path, contents) => ({ path, contents: new TextEncoder().encode(contents) }),
};

export class Reporter {
  checkConfig(_config) {}
  wantsRecords() {
    return false;
  }
}

export function exportReporter(reporter) {
  return {
    meta: meta(reporter),
    reportRenderer: {
      wantsRecords: () => Boolean(reporter.wantsRecords?.()),
      render(input) {
        try {
          return reporter.render({ schemaVersion: input.schemaVersion, summary: JSON.parse(input.summary) });
        } catch (e) {
          throw failure('render', e);
        }
      },
    },
  };
}
