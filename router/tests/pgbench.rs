//! pgbench (select-only, 10 s, 8 clients) through the router: zero errors.
mod common;
use common::*;
use std::process::Command;

#[tokio::test]
async fn pgbench_select_only_has_no_errors() {
    let r = Router::start();
    let c = cluster();
    // pgbench's tables, readable by the application role.
    let init = Command::new("pgbench")
        .args([
            "-i",
            "-q",
            "-s",
            "1",
            "-h",
            &c.sock,
            "-p",
            &c.port.to_string(),
            "-U",
            "postgres",
            DB,
        ])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    admin_sql("GRANT SELECT ON pgbench_accounts, pgbench_branches, pgbench_tellers TO rt_app");
    let out = Command::new("pgbench")
        .args([
            "-n",
            "-S",
            "-T",
            "10",
            "-c",
            "8",
            "-j",
            "2",
            "-h",
            "127.0.0.1",
            "-p",
            &r.port.to_string(),
        ])
        .args(["-U", "rt_app.bench", DB])
        .env("PGPASSWORD", PASSWORD)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("number of failed transactions: 0 (0.000%)"),
        "{text}"
    );
    let tx: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .and_then(|v| v.split('/').next()?.trim().parse().ok())
        .unwrap_or(0);
    assert!(tx > 1000, "only {tx} transactions: {text}");
}
