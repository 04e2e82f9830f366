// Named queries (prepared statements) in transaction pooling, node-postgres.
// usage: node tx_node.js HOST PORT USER_A USER_B PASSWORD DBNAME
// Two clients of two tenants on a pool of one backend; prints one line the
// Rust test (router/tests/tx_drivers.rs) checks.
const { Client } = require('pg');

async function main() {
  const [host, port, userA, userB, password, database] = process.argv.slice(2);
  const connect = async (user) => {
    const c = new Client({ host, port: Number(port), user, password, database });
    await c.connect();
    return c;
  };
  const a = await connect(userA);
  const b = await connect(userB);
  const seen = new Set();
  for (let i = 0; i < 20; i++) {
    for (const c of [a, b]) {
      const r = await c.query({
        name: 'count-notes',
        text: 'SELECT tenant.current_tenant_id() AS t, count(*)::int AS n FROM notes WHERE body LIKE $1',
        values: ['%'],
      });
      seen.add(`${r.rows[0].t}=${r.rows[0].n}`);
    }
  }
  console.log('named ' + [...seen].sort().join(' '));
  await a.end();
  await b.end();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
