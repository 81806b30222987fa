/**
 * Child process of crash.test.ts: ingests two regions' buses (argv: db path, token, url A, url B)
 * into the analytics store in small batches and prints "region nextOffset" after each commit. The
 * parent kills it with SIGKILL mid-stream.
 */
import { RegionIngestor, SqliteAnalyticsStore } from '../../src/analytics/index.js';

const [path = '', token = '', ...urls] = process.argv.slice(2);
const store = await SqliteAnalyticsStore.open({ path });
const ingestors: RegionIngestor[] = [];
for (const [i, url] of urls.entries()) {
  const ingestor = new RegionIngestor({
    region: `r${i}`,
    url,
    token,
    store,
    batchSize: 25,
    waitMs: 100,
    metrics: {
      batch: (region) => process.stdout.write(`${region} ${ingestor.status().nextOffset}\n`),
      gap: () => {},
    },
  });
  ingestors.push(ingestor);
  await ingestor.start();
}
