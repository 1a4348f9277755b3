// Where the page's time goes, in the browser's performance timeline: each step worth knowing about (an API
// request's wait, body and parse; a class load's inserts and first drawing) is a measure named `hub:...`,
// readable in the developer tools' performance panel and by the rendering benchmark
// (performance.getEntriesByType("measure")). The timeline is emptied now and then so that a page left open
// for days does not grow it without end.

const KEEP = 2000;
let count = 0;

/** Records the step `name` from `start` to `end` (performance.now() times; end: now). */
export function measure(name: string, start: number, end: number = performance.now()): void {
  if (++count > KEEP) {
    performance.clearMeasures();
    count = 1;
  }
  performance.measure(`hub:${name}`, { start, end });
}
