// A reporter's per-request records. Imported only by reporters (the
// `records` interface is in the reporter world alone).
import * as hostRecords from 'barrage:plugin/records@0.2.0';

export const records = {
  count: () => Number(hostRecords.count()),
  /** Every record as an object, in order, fetched from the host in batches. */
  *each() {
    for (;;) {
      const batch = hostRecords.nextBatch(1024);
      if (batch.length === 0) return;
      for (const record of batch) yield JSON.parse(record);
    }
  },
};
