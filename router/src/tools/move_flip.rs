//! `tenants move` from the schema copy and the pause on: copy the schema
//! (`copy_schema`), make the tenant quiet and the target complete
//! (`quiesce`: pause, fence, end backends, zero lag, verify, sequences),
//! then flip the catalog and finish (`flip_and_finish`).

use super::move_sql as sql;
use super::move_state::{wait_lag, Move, MoveArgs, MoveError, Step};
use std::time::{Duration, Instant};

/// Create on the target what it lacks: a schema tenant's schema, an rls
/// tenant's tables (then `tenant.protect`ed there), from `pg_dump
/// --schema-only` of the source. Roles the dump names must exist on the
/// target (roles are per server).
pub(super) async fn copy_schema(m: &mut Move, args: &MoveArgs) -> Result<(), MoveError> {
    let mut wanted = Vec::new();
    match &m.schema {
        Some(s) => {
            if !sql::schema_exists(&m.dst, s).await? {
                wanted.push(format!("--schema={}", quoted_pattern(s)));
            }
        }
        None => {
            for t in &m.tables {
                if !sql::exists(&m.dst, &t.name).await? {
                    wanted.push(format!("--table={}", t.name));
                }
            }
        }
    }
    if wanted.is_empty() {
        m.log(Step::Schema, "the target has every table already");
        return Ok(());
    }
    let pg_dump = match &args.pg_bin {
        Some(dir) => dir.join("pg_dump"),
        None => "pg_dump".into(),
    };
    let mut cmd = tokio::process::Command::new(&pg_dump);
    cmd.args(["--schema-only", "--no-publications", "--no-subscriptions"])
        .args(&wanted)
        .arg(format!("--dbname={}", m.dump_conninfo));
    if let Some(p) = &m.source_password {
        cmd.env("PGPASSWORD", p);
    }
    let out = cmd
        .output()
        .await
        .map_err(|e| MoveError::Setup(format!("{}: {e}", pg_dump.display())))?;
    if !out.status.success() {
        return Err(MoveError::Setup(format!(
            "pg_dump --schema-only failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let script = dump_as_sql(&String::from_utf8_lossy(&out.stdout));
    m.dst
        .batch_execute(&script)
        .await
        .map_err(sql::step("applying the schema to the target"))?;
    m.dst
        .batch_execute("RESET search_path")
        .await
        .map_err(sql::step("RESET search_path"))?;
    for t in m.tables.clone() {
        sql::protect(&m.dst, &t).await?;
    }
    m.log(
        Step::Schema,
        format!("created on the target: {}", wanted.join(" ")),
    );
    Ok(())
}

/// pg_dump's plain script as SQL: without the `\\restrict KEY` line it
/// opens with and the matching `\\unrestrict KEY` (pg_dump 17.6+ writes
/// them for psql; they are not SQL), and nothing else. Any other line that
/// starts with a backslash is inside a literal or a body the source holds
/// (a tenant's comment whose last line is `\\`): dropping it would drop a
/// closing quote and run what follows — text the tenant also writes — as
/// SQL, as the superuser.
pub(super) fn dump_as_sql(dump: &str) -> String {
    let mut key: Option<&str> = None;
    let mut header = true;
    let mut out = Vec::new();
    for line in dump.lines() {
        if header {
            if let Some(k) = line.strip_prefix("\\restrict ") {
                key = Some(k.trim_end());
                header = false;
                continue;
            }
            // Before the key: only pg_dump's comments and blank lines.
            header = line.is_empty() || line.starts_with("--");
        } else if let Some(k) = key {
            if line.strip_prefix("\\unrestrict ").map(str::trim_end) == Some(k) {
                continue;
            }
        }
        out.push(line);
    }
    out.join("\n")
}

/// A name as an exact pg_dump pattern: double-quoted.
fn quoted_pattern(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Pause the tenant, fence it on the source, end its backends there, wait
/// for zero lag, compare the rows, advance the target's sequences.
pub(super) async fn quiesce(m: &mut Move, args: &MoveArgs) -> Result<(), MoveError> {
    m.begin(Step::Pause, "pausing the tenant in the router");
    let paused_at = Instant::now();
    let v = m
        .api
        .post(
            &format!(
                "/tenants/{}/pause?wait_ms={}",
                m.id,
                args.quiet_timeout_ms.min(60_000)
            ),
            Duration::from_millis(args.quiet_timeout_ms),
        )
        .await?;
    let running = v["running"].as_u64().unwrap_or(u64::MAX);
    m.log(
        Step::Pause,
        format!("paused; transactions still running: {running}"),
    );
    m.begin(Step::Fence, "fencing the tenant on the source");
    let reason = format!("moved to upstream {}", m.to);
    sql::fence(&m.src, &m.id, Some(&reason)).await?;
    m.begin(
        Step::EndBackends,
        "ending the tenant's backends on the source",
    );
    match sql::end_backends(&m.src, &m.id).await? {
        Some(n) => m.log(Step::EndBackends, format!("{n} backends ended")),
        None if running > 0 => {
            return Err(MoveError::Refused(format!(
                "{running} transactions of the tenant still run after {} ms and the source has no tenant.tenant_backends to end them",
                args.quiet_timeout_ms
            )))
        }
        None => m.log(
            Step::EndBackends,
            "the source has no tenant.tenant_backends: none runs in the router; its parked sessions end at the resume",
        ),
    }
    m.begin(
        Step::ZeroLag,
        "waiting until the target has all the source wrote",
    );
    let lsn = sql::current_lsn(&m.src).await?;
    let deadline = Instant::now() + Duration::from_millis(args.lag_timeout_ms);
    wait_lag(
        m,
        &lsn,
        deadline,
        args.lag_timeout_ms,
        Duration::from_millis(2),
    )
    .await?;
    m.log(Step::ZeroLag, format!("the target confirmed {lsn}"));
    if args.verify {
        m.begin(Step::Verify, "comparing the tenant's rows on both sides");
        for t in m.tables.clone() {
            let (a, b) = tokio::try_join!(
                sql::checksum(&m.src, &t, &m.id),
                sql::checksum(&m.dst, &t, &m.id)
            )?;
            if a != b {
                return Err(MoveError::Refused(format!(
                    "{}: the source has {} rows (checksum {}), the target {} (checksum {})",
                    t.name, a.0, a.1, b.0, b.1
                )));
            }
            m.log(
                Step::Verify,
                format!("{}: {} rows, checksum {} on both", t.name, a.0, a.1),
            );
        }
    }
    m.begin(
        Step::Sequences,
        "bringing the target's sequences past the source's",
    );
    for (seq, last) in sql::sequences(&m.src, &m.tables, m.schema.as_deref()).await? {
        if let Some(v) = last {
            let now = sql::advance_sequence(&m.dst, &seq, v).await?;
            m.log(Step::Sequences, format!("{seq}: source {v}, target {now}"));
        }
    }
    m.log(
        Step::Sequences,
        format!("paused for {} ms so far", paused_at.elapsed().as_millis()),
    );
    Ok(())
}

/// Unfence the target, flip the catalog, wait for the router to see it,
/// resume, drop the replication objects, (`--drop-source`) delete the
/// source's rows. Past the flip, failures are reported, not undone: the
/// source's fence keeps the tenant off it.
pub(super) async fn flip_and_finish(m: &mut Move, args: &MoveArgs) -> Result<(), MoveError> {
    m.begin(Step::Flip, format!("placing the tenant on \"{}\"", m.to));
    let flipped = async {
        sql::fence(&m.dst, &m.id, None).await?;
        m.catalog
            .execute(
                "SELECT tenant.alter_tenant($1::pg_catalog.text, upstream => $2::pg_catalog.text)",
                &[&m.id, &m.to],
            )
            .await
            .map_err(sql::step("tenant.alter_tenant(upstream => ...)"))?;
        Ok::<(), MoveError>(())
    }
    .await;
    if let Err(e) = flipped {
        m.log(Step::Flip, format!("failed: {e}; undoing the move"));
        m.at = Step::Flip;
        return Err(e);
    }
    m.log(Step::Flip, "the catalog places the tenant on the target");
    let mut failed = Vec::new();
    if let Err(e) = router_sees(m).await {
        m.log(Step::Flip, format!("{e}"));
    }
    m.begin(Step::Resume, "resuming the tenant");
    match m
        .api
        .post(
            &format!("/tenants/{}/resume?reconnect=true", m.id),
            Duration::from_secs(5),
        )
        .await
    {
        Ok(_) => m.log(Step::Resume, "resumed"),
        Err(e) => failed.push(format!("resume: {e} (POST /tenants/{}/resume)", m.id)),
    }
    m.begin(
        Step::CleanUp,
        "dropping the subscription and the publication",
    );
    if let Err(e) = sql::drop_subscription(&m.dst, &m.names).await {
        failed.push(format!("DROP SUBSCRIPTION {}: {e}", m.names.subscription));
    }
    if let Err(e) = sql::drop_publication(&m.src, &m.names).await {
        failed.push(format!("DROP PUBLICATION {}: {e}", m.names.publication));
    }
    if args.drop_source {
        m.begin(Step::DropSource, "deleting the tenant's rows on the source");
        for t in m.tables.clone() {
            match sql::delete_rows(&m.src, &t, &m.id).await {
                Ok(n) => m.log(Step::DropSource, format!("{}: {n} rows deleted", t.name)),
                Err(e) => failed.push(format!("{}: {e}", t.name)),
            }
        }
    }
    if failed.is_empty() {
        m.log(
            m.at,
            format!("tenant \"{}\" now lives on \"{}\"", m.id, m.to),
        );
        return Ok(());
    }
    Err(MoveError::Refused(format!(
        "tenant \"{}\" lives on \"{}\" now (the source is fenced), but: {}",
        m.id,
        m.to,
        failed.join("; ")
    )))
}

/// Wait (up to 5 s) until the router's row of the tenant names the
/// target: its clients are then routed there once resumed.
async fn router_sees(m: &Move) -> Result<(), MoveError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = m.api.get(&format!("/tenants/{}", m.id)).await?;
        if v["upstream"].as_str().unwrap_or("main") == m.to {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(MoveError::Timeout {
                what: "the router seeing the new upstream".into(),
                ms: 5_000,
            });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::dump_as_sql;

    #[test]
    fn only_the_restrict_lines_of_the_dump_are_dropped() {
        let dump = "--\n-- PostgreSQL database dump\n--\n\n\\restrict K1\n\nCOMMENT ON TABLE s.a IS 'x\n\\';\nCOMMENT ON COLUMN s.a.c IS '; CREATE ROLE pwned; --';\n\\unrestrict K2\n\\unrestrict K1\n";
        let sql = dump_as_sql(dump);
        assert!(!sql.contains("\\restrict K1"), "{sql}");
        assert!(!sql.contains("\\unrestrict K1"), "{sql}");
        // The tenant's lines stay, the literal stays closed.
        assert!(sql.contains("'x\n\\';\n"), "{sql}");
        assert!(sql.contains("\\unrestrict K2"), "{sql}");
        // A dump without the key (pg_dump before 17.6) is kept whole.
        let old = "--\nCOMMENT ON TABLE s.a IS 'x\n\\restrict K';\n";
        assert_eq!(dump_as_sql(old), old.trim_end());
    }
}
