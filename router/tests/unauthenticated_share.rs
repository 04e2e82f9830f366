//! A tenant's share of the relayed logins in progress
//! (`auth.max_unauthenticated_per_tenant`): clients of one tenant that open
//! PostgreSQL's password exchange and never answer fill their tenant's
//! share, not `auth.max_unauthenticated_backends`, so other tenants' relayed
//! logins go on.
mod common;
use common::wire::*;
use common::*;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The silent clients' roles (SCRAM in pg_hba.conf, so PostgreSQL asks
/// them for a proof), one per test: the first test counts its backends in
/// `ps` while they authenticate.
const SILENT: &str = "rt_share";
const SILENT_8: &str = "rt_share8";

fn fixtures() {
    static F: OnceLock<()> = OnceLock::new();
    F.get_or_init(|| {
        cluster();
        scram_app_roles(&[SILENT, SILENT_8]);
        tenants(&["us_a", "us_b"], "");
    });
}

/// Backends PostgreSQL holds for `role` still authenticating.
fn preauth_backends(role: &str) -> usize {
    let out = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .expect("ps");
    let needle = format!("postgres: {role} {DB} ");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(&needle) && l.ends_with("authentication"))
        .count()
}

/// A client that sends its StartupMessage, gets PostgreSQL's SCRAM
/// challenge (relayed: a backend is held for it) and never answers.
async fn silent_login(port: u16, user: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(&startup(user)).await.expect("startup");
    let (tag, body) = read_msg(&mut s).await;
    assert_eq!(
        (tag, auth_code(&body)),
        (b'R', 10),
        "PostgreSQL's challenge"
    );
    s
}

async fn tenant_of(r: &Router, user: &str) -> Result<String, tokio_postgres::Error> {
    let c = connect(&r.url(user)).await?;
    Ok(first_value(&c, "SELECT tenant.current_tenant_id()").await)
}

#[tokio::test]
async fn silent_logins_of_one_tenant_fill_only_its_share() {
    fixtures();
    const SHARE: usize = 3;
    let r = Router::start_with(&format!(
        "[auth]\nmax_unauthenticated_backends = 10\nmax_unauthenticated_per_tenant = {SHARE}\n"
    ));
    let mut silent = Vec::new();
    for _ in 0..SHARE {
        silent.push(silent_login(r.port, &format!("{SILENT}.us_a")).await);
    }
    assert_eq!(preauth_backends(SILENT), SHARE, "PostgreSQL holds theirs");
    // us_a's next relayed login is refused before a backend is opened.
    let mut s = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
    s.write_all(&startup(&format!("{SILENT}.us_a")))
        .await
        .unwrap();
    let (tag, body) = read_msg(&mut s).await;
    assert_eq!(tag, b'E');
    assert_eq!(
        error_fields(&body),
        (
            "53300".into(),
            format!(
                "too many clients are authenticating for tenant \"us_a\": \
                 tenant-router's auth.max_unauthenticated_per_tenant is {SHARE}"
            )
        )
    );
    assert_eq!(
        preauth_backends(SILENT),
        SHARE,
        "the refused client opened nothing"
    );
    let e = tenant_of(&r, "rt_app.us_a").await.unwrap_err();
    assert_eq!(sqlstate(&e), "53300", "{e}");
    // Control: another tenant's relayed login is let through (7 of the 10
    // places are free) and works.
    assert_eq!(tenant_of(&r, "rt_app.us_b").await.unwrap(), "us_b");
    // us_a's silent clients go: its relayed logins are let through again.
    drop(silent);
    assert!(
        eventually(Duration::from_secs(5), || async {
            match tenant_of(&r, "rt_app.us_a").await {
                Ok(t) => t == "us_a",
                Err(e) => {
                    assert_eq!(sqlstate(&e), "53300", "{e}");
                    false
                }
            }
        })
        .await,
        "us_a logs in once its silent clients are gone"
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            preauth_backends(SILENT) == 0
        })
        .await,
        "their backends are closed"
    );
}

/// Without `max_unauthenticated_per_tenant` the share is 8, or
/// `max_unauthenticated_backends` when that is lower: the cap alone still
/// applies as before (tenant_auth.rs `relayed_unauthenticated_backends_are_capped`).
#[tokio::test]
async fn the_default_share_is_eight() {
    fixtures();
    let r = Router::start();
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(silent_login(r.port, &format!("{SILENT_8}.us_b")).await);
    }
    let e = tenant_of(&r, "rt_app.us_b").await.unwrap_err();
    assert_eq!(sqlstate(&e), "53300", "{e}");
    assert!(
        db_message(&e).contains("auth.max_unauthenticated_per_tenant is 8"),
        "{e}"
    );
    assert_eq!(tenant_of(&r, "rt_app.us_a").await.unwrap(), "us_a");
    drop(silent);
}
