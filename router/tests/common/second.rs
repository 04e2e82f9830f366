//! A second PostgreSQL server for placement tests (docs/src/scaling-out/index.md):
//! a cluster of its own (scripts/cluster with another data directory and
//! a port the OS picked), running the same pg_tenant build with the same
//! context public key as the main test cluster, its database `DB` with
//! the extension and no tenant catalog rows. Stopped and deleted on drop.
use super::{cluster, repo, PASSWORD};
use std::path::PathBuf;
use std::process::Command;

pub struct Second {
    pub port: u16,
    pub dir: PathBuf,
}

impl Second {
    /// Start a new server and create the login roles `roles` (password
    /// `PASSWORD`, application roles) and `sql` in `DB`.
    pub fn start(roles: &[&str], sql: &str) -> Second {
        let main = cluster();
        // PostgreSQL cannot listen on port 0: a free port is taken and may
        // be lost to another process before the server binds it, so a
        // failed start is tried again on another port.
        let mut attempt = 0;
        let s = loop {
            attempt += 1;
            let port = super::free_port();
            let dir = std::env::temp_dir().join(format!("pg-tenant-second-{port}"));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("second cluster dir");
            // The same signing key: the server gets the router's public key.
            std::fs::copy(&main.key_file, dir.join("context_signing_key.pem")).expect("copy key");
            let s = Second { port, dir };
            let out = s.script("start");
            if out.status.success() {
                break s;
            }
            assert!(
                attempt < 3,
                "second cluster: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        s.sql(&format!(
            "SET client_min_messages = warning; DO $$ DECLARE r text; BEGIN \
               FOREACH r IN ARRAY ARRAY[{}]::text[] LOOP \
                 IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN \
                   EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L', r, '{PASSWORD}'); \
                 END IF; \
                 PERFORM tenant.create_app_role(r); \
               END LOOP; END $$",
            roles
                .iter()
                .map(|r| format!("'{r}'"))
                .collect::<Vec<_>>()
                .join(",")
        ));
        // The same password verifiers as on the main server, so a router
        // that checks clients itself (SCRAM: what a proof yields works only
        // against the same verifier) logs in here too.
        for r in roles {
            let verifier = super::sql_in(
                "postgres",
                &format!("SELECT rolpassword FROM pg_authid WHERE rolname = '{r}'"),
            );
            if verifier.starts_with("SCRAM-SHA-256$") {
                s.sql(&format!("ALTER ROLE {r} PASSWORD '{verifier}'"));
            }
        }
        if !sql.is_empty() {
            s.sql(sql);
        }
        s
    }

    fn script(&self, cmd: &str) -> std::process::Output {
        Command::new(repo().join("scripts/cluster"))
            .arg(cmd)
            .env("PG_TENANT_DIR", &self.dir)
            .env("PG_TENANT_PORT", self.port.to_string())
            .env("PG_TENANT_DB", super::DB)
            .env("PG_TENANT_PGBIN", &cluster().bin_dir)
            .env("PG_TENANT_NO_INSTALL", "1")
            // postgres's TCP password as on the main server.
            .env("PG_TENANT_POSTGRES_PASSWORD", &cluster().postgres_password)
            .output()
            .expect("scripts/cluster")
    }

    /// Run SQL as postgres in `DB` on this server; its output (`-tA`).
    pub fn sql(&self, sql: &str) -> String {
        let out = self.try_sql(sql);
        out.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub fn try_sql(&self, sql: &str) -> Result<String, String> {
        self.try_sql_in(super::DB, sql)
    }

    /// Run SQL as postgres in database `db` on this server.
    pub fn sql_in(&self, db: &str, sql: &str) -> String {
        self.try_sql_in(db, sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub fn try_sql_in(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(cluster().bin("psql"))
            .args(["-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.join("sock"))
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .expect("psql");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// host:port, for `[upstreams.<name>] address`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stop the server (its data kept).
    pub fn stop(&self) {
        let out = self.script("stop");
        assert!(
            out.status.success(),
            "stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Start it again after `stop`.
    pub fn restart(&self) {
        let out = self.script("start");
        assert!(
            out.status.success(),
            "start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Second {
    fn drop(&mut self) {
        let _ = self.script("destroy");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
