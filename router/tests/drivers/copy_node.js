// COPY FROM STDIN through tenant-router with node-postgres + pg-copy-streams (CSV).
// usage: node copy_node.js HOST PORT USER PASSWORD DBNAME
// Prints one line per step; the Rust test (router/tests/copy.rs) checks them.
const { Client } = require('pg');
const { from: copyFrom } = require('pg-copy-streams');
const { pipeline } = require('node:stream/promises');
const { Readable } = require('node:stream');

async function load(client, sql, text) {
  const stream = client.query(copyFrom(sql));
  await pipeline(Readable.from([text]), stream);
  return stream.rowCount;
}

async function main() {
  const [host, port, user, password, database] = process.argv.slice(2);
  const client = new Client({ host, port: Number(port), user, password, database });
  await client.connect();
  let csv = '';
  for (let i = 0; i < 1000; i++) csv += `node-${i},${i}\n`;
  console.log(`csv ${await load(client, 'COPY cp_load (sku, qty) FROM STDIN (FORMAT csv)', csv)}`);
  const tenant = (await client.query('SELECT tenant.current_tenant_id() AS t')).rows[0].t;
  try {
    await load(client, 'COPY cp_load (tenant_id, sku, qty) FROM STDIN (FORMAT csv)',
      `${tenant},node-ok,1\nacme,node-evil,2\n`);
    console.log('foreign accepted');
  } catch (e) {
    console.log(`foreign refused ${e.code}`);
  }
  const n = (await client.query('SELECT count(*)::int AS n FROM cp_load')).rows[0].n;
  console.log(`visible ${n}`);
  await client.end();
}

main().catch((e) => { console.error(e); process.exit(1); });
