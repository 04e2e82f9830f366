//! `tenant-router tenants move [-c ROUTER_CONFIG] <id> --to <upstream>
//! [--drop-source] [--abort]`: move a tenant's rows to another server
//! with PostgreSQL's logical replication, live (docs/src/scaling-out/moving-a-tenant.md).
//!
//! Steps (`Step`), each logged on stdout: check → schema → publish →
//! subscribe → sync → pause → fence → end backends → zero lag → verify →
//! sequences → flip → resume → clean up (→ drop source). Before the flip,
//! a failure (or `--abort`, for a move that was interrupted) undoes what
//! was made: the subscription (and its slot), the publication, the rows
//! copied to the target, the source's fence, the pause. From the flip on,
//! the tenant lives on the target: the source keeps its fence, so a
//! failure later never leaves the tenant on both servers or on neither.
//! `move_sql` holds the SQL.

use super::admin::{admin_config, check_extension, connect_admin};
use super::admin_api::AdminApi;
use super::move_sql::{self as sql, ReplicationNames};
pub use super::move_state::MoveArgs;
use super::move_state::{wait_lag, Move, MoveError, Step};
use crate::config::RawConfig;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// Run `tenants move`; its log on stdout, the error on stderr.
pub async fn run(args: MoveArgs) -> ExitCode {
    match Box::pin(prepare(&args)).await {
        Err(e) => {
            eprintln!("tenant-router tenants move: {e}");
            ExitCode::from(super::admin::EXIT_SETUP)
        }
        Ok(mut m) => {
            let r = if args.abort {
                Box::pin(abort(&mut m, &args)).await
            } else {
                Box::pin(go(&mut m, &args)).await
            };
            match r {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("tenant-router tenants move {}: {:?}: {e}", m.id, m.at);
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// What the move reads of the router's configuration (the file as
/// `RawConfig` reads it: its defaults where a key is missing).
struct RouterFile {
    upstream: String,
    upstreams: std::collections::BTreeMap<String, String>,
    admin_listen: String,
    admin_token: String,
}

impl RouterFile {
    fn read(path: &std::path::Path) -> Result<RouterFile, MoveError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| MoveError::Setup(format!("{}: {e}", path.display())))?;
        let doc: toml::Table = text
            .parse()
            .map_err(|e| MoveError::Setup(format!("{}: {e}", path.display())))?;
        let defaults = RawConfig::default();
        let text_of = |key: &str, default: String| {
            doc.get(key)
                .and_then(|v| v.as_str())
                .map_or(default, str::to_owned)
        };
        let upstreams = doc
            .get("upstreams")
            .and_then(|u| u.as_table())
            .map(|t| {
                t.iter()
                    .filter_map(|(name, u)| {
                        Some((name.clone(), u.get("address")?.as_str()?.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(RouterFile {
            upstream: text_of("upstream", defaults.upstream),
            upstreams,
            admin_listen: text_of("admin_listen", defaults.admin_listen),
            admin_token: text_of("admin_token", defaults.admin_token),
        })
    }

    /// Where an upstream named in the configuration is.
    fn address(&self, name: &str) -> Option<String> {
        match name {
            "main" => Some(self.upstream.clone()),
            _ => self.upstreams.get(name).cloned(),
        }
    }
}

/// `url` pointed at `address` (host:port), as a libpq key=value string.
fn pointed_at(url: &str, address: &str) -> Result<String, MoveError> {
    let from = admin_config(url).map_err(|e| MoveError::Setup(e.to_string()))?;
    let (host, port) = address
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .ok_or_else(|| {
            MoveError::Setup(format!("upstream address \"{address}\" is not host:port"))
        })?;
    // The catalog's user, password and database; the upstream's address.
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(host).port(port);
    if let Some(u) = from.get_user() {
        cfg.user(u);
    }
    if let Some(p) = from.get_password() {
        cfg.password(p);
    }
    if let Some(d) = from.get_dbname() {
        cfg.dbname(d);
    }
    Ok(conninfo(&cfg, true))
}

/// A tokio-postgres configuration as a libpq key=value string.
fn conninfo(cfg: &tokio_postgres::Config, with_password: bool) -> String {
    let q = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
    let mut parts = Vec::new();
    if let Some(h) = cfg.get_hosts().first() {
        match h {
            tokio_postgres::config::Host::Tcp(h) => parts.push(format!("host={}", q(h))),
            tokio_postgres::config::Host::Unix(p) => {
                parts.push(format!("host={}", q(&p.to_string_lossy())))
            }
        }
    }
    if let Some(p) = cfg.get_ports().first() {
        parts.push(format!("port={p}"));
    }
    if let Some(u) = cfg.get_user() {
        parts.push(format!("user={}", q(u)));
    }
    if let Some(d) = cfg.get_dbname() {
        parts.push(format!("dbname={}", q(d)));
    }
    if let Some(p) = cfg.get_password().filter(|_| with_password) {
        parts.push(format!("password={}", q(&String::from_utf8_lossy(p))));
    }
    parts.join(" ")
}

async fn connect(what: &str, url: &str) -> Result<Client, MoveError> {
    let cfg = admin_config(url).map_err(|e| MoveError::Setup(format!("{what}: {e}")))?;
    let c = connect_admin(&cfg)
        .await
        .map_err(|e| MoveError::Setup(format!("{what}: {e}")))?;
    let (_, _, superuser) = check_extension(&c)
        .await
        .map_err(|e| MoveError::Setup(format!("{what}: {e}")))?;
    if !superuser {
        return Err(MoveError::Setup(format!(
            "{what}: a superuser is needed (publications, subscriptions, fences, ending backends)"
        )));
    }
    Ok(c)
}

/// The check step: arguments, configuration, connections, the tenant.
async fn prepare(args: &MoveArgs) -> Result<Move, MoveError> {
    let started = Instant::now();
    if !pg_tenant_token::valid_tenant_id(&args.id) {
        return Err(MoveError::Setup(format!(
            "\"{}\" is not a valid tenant id",
            args.id
        )));
    }
    let raw = RouterFile::read(&args.config)?;
    let Some(target_addr) = raw.address(&args.to) else {
        return Err(MoveError::Setup(format!(
            "upstream \"{}\" is not in {} (add [upstreams.{}] with its address)",
            args.to,
            args.config.display(),
            args.to
        )));
    };
    if raw.admin_listen.is_empty() {
        return Err(MoveError::Setup(
            "the router's admin API is off (admin_listen = \"\"): the move pauses the tenant through it".into(),
        ));
    }
    let token = std::env::var("TENANT_ROUTER_ADMIN_TOKEN").unwrap_or(raw.admin_token.clone());
    let api = AdminApi {
        addr: raw.admin_listen.clone(),
        token,
    };
    let catalog = connect("the catalog", &args.admin.url).await?;
    let row = catalog
        .query_opt(
            "SELECT t.isolation::pg_catalog.text, t.schema_name::pg_catalog.text, t.upstream::pg_catalog.text \
               FROM tenant.tenants t WHERE t.id OPERATOR(pg_catalog.=) $1::pg_catalog.text",
            &[&args.id],
        )
        .await
        .map_err(sql::step("reading the tenant's row"))?
        .ok_or_else(|| MoveError::Setup(format!("tenant \"{}\" does not exist in the catalog", args.id)))?;
    let isolation: String = row.get(0);
    let schema: Option<String> = row.get(1);
    let from = row
        .get::<_, Option<String>>(2)
        .unwrap_or_else(|| "main".into());
    let schema = match isolation.as_str() {
        "rls" => None,
        "schema" => Some(schema.ok_or_else(|| {
            MoveError::Setup(format!("schema tenant \"{}\" has no schema_name", args.id))
        })?),
        other => {
            return Err(MoveError::Setup(format!(
                "tenant \"{}\" uses {other} isolation: only rls and schema tenants move this way (a database tenant's database moves with pg_dump or a replica)",
                args.id
            )))
        }
    };
    if from == args.to && !args.abort {
        return Err(MoveError::Setup(format!(
            "tenant \"{}\" already lives on upstream \"{from}\"",
            args.id
        )));
    }
    // The catalog is on the main upstream: its URL reaches main.
    let source_url = match (&args.source_url, from.as_str()) {
        (Some(u), _) => u.clone(),
        (None, "main") => args.admin.url.clone(),
        (None, name) => {
            let addr = raw.address(name).ok_or_else(|| {
                MoveError::Setup(format!(
                    "the tenant's upstream \"{name}\" is not in {}",
                    args.config.display()
                ))
            })?;
            pointed_at(&args.admin.url, &addr)?
        }
    };
    let target_url = match (&args.target_url, args.to.as_str()) {
        (Some(u), _) => u.clone(),
        (None, "main") => args.admin.url.clone(),
        (None, _) => pointed_at(&args.admin.url, &target_addr)?,
    };
    let source_cfg = admin_config(&source_url).map_err(|e| MoveError::Setup(e.to_string()))?;
    let source_conninfo = conninfo(&source_cfg, true);
    let dump_conninfo = conninfo(&source_cfg, false);
    let source_password = source_cfg
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let src = connect("the source", &source_url).await?;
    let dst = connect("the target", &target_url).await?;
    let tables = sql::tables(&src, schema.as_deref()).await?;
    let m = Move {
        id: args.id.clone(),
        to: args.to.clone(),
        src,
        dst,
        catalog,
        api,
        names: ReplicationNames::of(&args.id),
        schema,
        tables,
        source_conninfo,
        dump_conninfo,
        source_password,
        started,
        at: Step::Check,
    };
    m.log(
        Step::Check,
        format!(
            "{isolation} tenant on \"{from}\", moving to \"{}\"; tables: {}",
            args.to,
            m.tables
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    Ok(m)
}

/// The whole move; before the flip, a failure undoes it.
async fn go(m: &mut Move, args: &MoveArgs) -> Result<(), MoveError> {
    let publisher = args
        .publisher_conninfo
        .clone()
        .unwrap_or_else(|| m.source_conninfo.clone());
    if let Err(e) = Box::pin(before_flip(m, args, &publisher)).await {
        let at = m.at;
        m.log(at, format!("failed: {e}; undoing the move"));
        if let Err(u) = undo(m, at >= Step::Subscribe).await {
            m.log(
                at,
                format!("undoing failed too: {u}; run again with --abort"),
            );
        }
        return Err(e);
    }
    match Box::pin(super::move_flip::flip_and_finish(m, args)).await {
        // The catalog was not changed: undo.
        Err(e) if m.at == Step::Flip => {
            if let Err(u) = undo(m, true).await {
                m.log(
                    Step::Flip,
                    format!("undoing failed too: {u}; run again with --abort"),
                );
            }
            Err(e)
        }
        r => r,
    }
}

/// A schema tenant owns its tables, triggers and index expressions. From
/// 16 the subscription applies rows as each table's owner (`run_as_owner`
/// false, the default); on 15 as the subscription's owner, a superuser.
async fn apply_as_owner(dst: &Client, tenant: &str) -> Result<(), sql::SqlError> {
    let sql = "SELECT pg_catalog.current_setting('server_version_num')::pg_catalog.int4";
    let version: i32 = dst
        .query_one(sql, &[])
        .await
        .map_err(sql::step("reading the target's version"))?
        .get(0);
    if version >= 160000 {
        return Ok(());
    }
    Err(sql::SqlError::ApplyAsSuperuser {
        tenant: tenant.to_owned(),
        version: version / 10000,
    })
}

/// Check, copy the schema, replicate, pause, fence, catch up, verify.
async fn before_flip(m: &mut Move, args: &MoveArgs, publisher: &str) -> Result<(), MoveError> {
    sql::wal_level(&m.src).await?;
    let unlogged = sql::unlogged(&m.src, m.schema.as_deref()).await?;
    if !unlogged.is_empty() {
        return Err(sql::SqlError::Unlogged {
            tenant: m.id.clone(),
            tables: unlogged.join(", "),
        }
        .into());
    }
    if m.tables.is_empty() {
        return Err(sql::SqlError::NoTables {
            tenant: m.id.clone(),
            schema: m.schema.clone().unwrap_or_default(),
        }
        .into());
    }
    if m.schema.is_some() {
        apply_as_owner(&m.dst, &m.id).await?;
    }
    for t in &m.tables {
        if t.column.is_some() {
            sql::check_replica_identity(&m.src, t).await?;
        }
    }
    if sql::unsynced(&m.dst, &m.names).await?.is_some() {
        return Err(MoveError::Refused(format!(
            "subscription {} exists on the target: a move of this tenant is under way or was interrupted (--abort undoes it)",
            m.names.subscription
        )));
    }
    m.begin(Step::Schema, "copying the schema where the target lacks it");
    super::move_flip::copy_schema(m, args).await?;
    for t in &m.tables {
        sql::ensure_empty(&m.dst, t, &m.id).await?;
    }
    m.begin(
        Step::Publish,
        format!("CREATE PUBLICATION {}", m.names.publication),
    );
    sql::create_publication(&m.src, &m.names, &m.tables, m.schema.as_deref(), &m.id).await?;
    m.begin(
        Step::Subscribe,
        format!("CREATE SUBSCRIPTION {} (copy_data)", m.names.subscription),
    );
    sql::create_subscription(&m.dst, &m.names, publisher).await?;
    m.begin(Step::Sync, "waiting for the initial copy and catch-up");
    let deadline = Instant::now() + Duration::from_millis(args.sync_timeout_ms);
    loop {
        match sql::unsynced(&m.dst, &m.names).await? {
            Some(0) => break,
            _ if Instant::now() > deadline => {
                return Err(MoveError::Timeout {
                    what: "the initial copy".into(),
                    ms: args.sync_timeout_ms,
                })
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let lsn = sql::current_lsn(&m.src).await?;
    wait_lag(
        m,
        &lsn,
        deadline,
        args.sync_timeout_ms,
        Duration::from_millis(50),
    )
    .await?;
    m.log(Step::Sync, format!("copied and caught up to {lsn}"));
    super::move_flip::quiesce(m, args).await
}

/// Whether the catalog places the tenant on the move's target already.
async fn flipped(m: &Move) -> Result<bool, MoveError> {
    Ok(m
        .catalog
        .query_one(
            "SELECT COALESCE(t.upstream, 'main')::pg_catalog.text FROM tenant.tenants t WHERE t.id OPERATOR(pg_catalog.=) $1::pg_catalog.text",
            &[&m.id],
        )
        .await
        .map_err(sql::step("reading the tenant's upstream"))?
        .get::<_, String>(0)
        == m.to)
}

/// `--abort`: a move interrupted before its flip is undone (`undo`); one
/// interrupted after it (the tool killed between the flip and the end of
/// its clean-up) is finished instead: the tenant resumed, the subscription
/// dropped (and with it its slot on the source, which would keep the
/// source's WAL forever). The catalog no longer names the source: its
/// publication is dropped when `--source-url` says where it is, else
/// named for the operator to drop.
async fn abort(m: &mut Move, args: &MoveArgs) -> Result<(), MoveError> {
    if !flipped(m).await? {
        return undo(m, true).await;
    }
    m.at = Step::Resume;
    m.log(
        Step::Resume,
        format!(
            "the catalog places tenant \"{}\" on \"{}\" already: finishing the move instead",
            m.id, m.to
        ),
    );
    let mut failed = Vec::new();
    match m
        .api
        .post(
            &format!("/tenants/{}/resume?reconnect=true", m.id),
            Duration::from_secs(5),
        )
        .await
    {
        Ok(v) => m.log(
            Step::Resume,
            format!("resumed (was paused: {})", v["was_paused"]),
        ),
        Err(e) => failed.push(format!("resume: {e}")),
    }
    m.at = Step::CleanUp;
    match sql::drop_subscription(&m.dst, &m.names).await {
        Ok(had) => m.log(
            Step::CleanUp,
            format!("subscription (and its slot) dropped: {had}"),
        ),
        Err(e) => failed.push(format!("DROP SUBSCRIPTION {}: {e}", m.names.subscription)),
    }
    if args.source_url.is_some() {
        match sql::drop_publication(&m.src, &m.names).await {
            Ok(had) => m.log(Step::CleanUp, format!("publication dropped: {had}")),
            Err(e) => failed.push(format!("DROP PUBLICATION {}: {e}", m.names.publication)),
        }
    } else {
        m.log(
            Step::CleanUp,
            format!(
                "the publication {} stays on the source (give --source-url to drop it, or DROP PUBLICATION it there)",
                m.names.publication
            ),
        );
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(MoveError::Refused(failed.join("; ")))
}

/// Undo a move before its flip: the subscription and its slot, the
/// publication, (`copied`) the tenant's rows on the target, the source's
/// fence, the pause. Each part is done if needed, so it can run again.
async fn undo(m: &mut Move, copied: bool) -> Result<(), MoveError> {
    if flipped(m).await? {
        return Err(MoveError::Refused(format!(
            "the catalog already places tenant \"{}\" on \"{}\": the move went past its flip and cannot be undone (move it back instead)",
            m.id, m.to
        )));
    }
    let had_subscription = sql::drop_subscription(&m.dst, &m.names).await?;
    m.log(m.at, format!("subscription dropped: {had_subscription}"));
    let had_publication = sql::drop_publication(&m.src, &m.names).await?;
    m.log(
        m.at,
        format!("publication (and slot) dropped: {had_publication}"),
    );
    if copied || had_subscription {
        for t in m.tables.clone() {
            if sql::exists(&m.dst, &t.name).await? {
                let n = sql::delete_rows(&m.dst, &t, &m.id).await?;
                m.log(
                    m.at,
                    format!("{n} copied rows of {} removed from the target", t.name),
                );
            }
        }
    }
    let unfenced = sql::fence(&m.src, &m.id, None).await?;
    m.log(m.at, format!("source unfenced: {unfenced}"));
    let v = m
        .api
        .post(&format!("/tenants/{}/resume", m.id), Duration::from_secs(5))
        .await?;
    m.log(m.at, format!("resumed (was paused: {})", v["was_paused"]));
    Ok(())
}
