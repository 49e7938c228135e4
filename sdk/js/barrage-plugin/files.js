// A dataset's input files: only those its configuration names. Imported
// only by datasets (the `files` interface is in the dataset world alone).
import * as hostFiles from 'barrage:plugin/files@0.2.0';

export const files = {
  names: () => hostFiles.names(),
  size: (name) => Number(hostFiles.size(name)),
  read: (name, offset, len) => hostFiles.read(name, BigInt(offset), len),
  /** [line number from 1, line without its end] for each line of a UTF-8 file. */
  *lines(name) {
    const size = files.size(name);
    const decoder = new TextDecoder('utf-8', { fatal: true });
    let pending = '';
    let number = 0;
    for (let offset = 0; offset < size; ) {
      const chunk = files.read(name, offset, Math.min(1 << 20, size - offset));
      if (chunk.length === 0) break;
      offset += chunk.length;
      pending += decoder.decode(chunk, { stream: offset < size });
      const lines = pending.split('\n');
      pending = lines.pop();
      for (const line of lines) yield [++number, line.replace(/\r$/, '')];
    }
    if (pending !== '') yield [++number, pending.replace(/\r$/, '')];
  },
};
