//! What `tenants move` asks the two servers (`move_tenant` runs the steps):
//! the tenant's tables and their checks, the schema copy, the publication
//! and subscription, their progress, sequences, fences, checksums.
//!
//! Every name reaches SQL quoted by PostgreSQL (`format('%I')`, `%L`,
//! `regclass::text`) or as a bind parameter; the replication objects'
//! names are derived from the tenant id (`ReplicationNames`).

use super::admin::error_text;
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

/// Why a step on a server failed.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("{step}: {reason}")]
    Query { step: String, reason: String },
    #[error("table {table}: its replica identity ({identity}) does not cover the tenant column \"{column}\": logical replication of a row filter needs it (ALTER TABLE {table} REPLICA IDENTITY USING INDEX <a unique index with {column}>, or REPLICA IDENTITY FULL)")]
    ReplicaIdentity {
        table: String,
        identity: String,
        column: String,
    },
    #[error("tenant \"{tenant}\" has no tables to move on the source (rls: no table protected with tenant.protect; schema: schema \"{schema}\" is empty or missing)")]
    NoTables { tenant: String, schema: String },
    #[error("the target already holds {rows} rows of tenant \"{tenant}\" in {table}: remove them first (or finish or abort the earlier move)")]
    TargetNotEmpty {
        tenant: String,
        table: String,
        rows: i64,
    },
    #[error("wal_level on the source is \"{0}\": logical replication needs wal_level = logical (restart after setting it)")]
    WalLevel(String),
    #[error("unlogged tables of tenant \"{tenant}\": {tables}: logical replication does not carry unlogged tables (a publication leaves them out without a word, and their rows would stay behind): ALTER TABLE ... SET LOGGED first")]
    Unlogged { tenant: String, tables: String },
    #[error("schema tenant \"{tenant}\" cannot move to a PostgreSQL {version} target: before 16 the subscription applies rows as its owner, a superuser, so the tenant's own triggers and index expressions would run as superuser there; move it to a server on PostgreSQL 16 or later")]
    ApplyAsSuperuser { tenant: String, version: i32 },
}

pub(super) fn step(what: &str) -> impl Fn(tokio_postgres::Error) -> SqlError + '_ {
    move |e| {
        let (code, msg) = error_text(&e);
        SqlError::Query {
            step: what.to_owned(),
            reason: match code {
                Some(c) => format!("{msg} (SQLSTATE {c})"),
                None => msg,
            },
        }
    }
}

/// The names of the move's replication objects: `pgt_move_` and the id
/// with `-` as `_`, then 8 hex digits of its SHA-256 (so `a-b` and `a_b`
/// differ), at most 63 bytes, only `[a-z0-9_]` (a slot name's alphabet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationNames {
    pub publication: String,
    pub subscription: String,
    pub slot: String,
}

impl ReplicationNames {
    pub fn of(id: &str) -> ReplicationNames {
        let digest = hex::encode(&Sha256::digest(id.as_bytes())[..4]);
        let safe: String = id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(40)
            .collect();
        let name = format!("pgt_move_{safe}_{digest}");
        ReplicationNames {
            publication: name.clone(),
            subscription: name.clone(),
            slot: name,
        }
    }
}

/// One table of the tenant: its name as PostgreSQL quotes it, and the
/// tenant column (None: every row is the tenant's, a schema tenant).
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub column: Option<String>,
}

/// The tenant's tables on the source: rls, every `tenant.protect`ed table
/// (with its column); schema, every table of its schema.
pub async fn tables(src: &Client, schema: Option<&str>) -> Result<Vec<Table>, SqlError> {
    let rows = match schema {
        None => src
            .query(
                "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), p.tenant_column::pg_catalog.text \
                   FROM tenant.protected p JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p.relid \
                   JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
                  WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::pg_catalog.\"char\"[]) \
                    AND c.relpersistence OPERATOR(pg_catalog.=) 'p' \
                  ORDER BY 1",
                &[],
            )
            .await
            .map_err(step("reading tenant.protected"))?,
        Some(s) => src
            .query(
                "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), NULL::pg_catalog.text \
                   FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
                  WHERE n.nspname OPERATOR(pg_catalog.=) $1::pg_catalog.text \
                    AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::pg_catalog.\"char\"[]) \
                    AND NOT c.relispartition ORDER BY 1",
                &[&s],
            )
            .await
            .map_err(step("listing the schema's tables"))?,
    };
    Ok(rows
        .iter()
        .map(|r| Table {
            name: r.get(0),
            column: r.get(1),
        })
        .collect())
}

/// The tenant's unlogged tables (rls: `tenant.protect`ed ones; schema:
/// those of its schema), which no publication carries.
pub async fn unlogged(src: &Client, schema: Option<&str>) -> Result<Vec<String>, SqlError> {
    let rows = src
        .query(
            "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) \
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
              WHERE c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::pg_catalog.\"char\"[]) \
                AND c.relpersistence OPERATOR(pg_catalog.=) 'u' \
                AND CASE WHEN $1::pg_catalog.text IS NULL \
                         THEN c.oid OPERATOR(pg_catalog.=) ANY (SELECT p.relid FROM tenant.protected p) \
                         ELSE n.nspname OPERATOR(pg_catalog.=) $1::pg_catalog.text END \
              ORDER BY 1",
            &[&schema],
        )
        .await
        .map_err(step("looking for unlogged tables"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Refuse a table whose replica identity does not cover its tenant
/// column (a row filter on UPDATE/DELETE needs it), or that has none.
pub async fn check_replica_identity(src: &Client, t: &Table) -> Result<(), SqlError> {
    let row = src
        .query_one(
            "SELECT c.relreplident::pg_catalog.text, \
                    CASE c.relreplident WHEN 'f' THEN true WHEN 'n' THEN false \
                    ELSE EXISTS (SELECT FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a \
                                   ON a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attnum OPERATOR(pg_catalog.=) ANY (i.indkey) \
                                  WHERE i.indrelid OPERATOR(pg_catalog.=) c.oid \
                                    AND CASE c.relreplident WHEN 'd' THEN i.indisprimary ELSE i.indisreplident END \
                                    AND ($2::pg_catalog.text IS NULL OR a.attname OPERATOR(pg_catalog.=) $2::pg_catalog.name)) END \
               FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1::pg_catalog.text::pg_catalog.regclass",
            &[&t.name, &t.column],
        )
        .await
        .map_err(step("reading the replica identity"))?;
    let kind: String = row.get(0);
    let covered: bool = row.get(1);
    if covered {
        return Ok(());
    }
    Err(SqlError::ReplicaIdentity {
        table: t.name.clone(),
        identity: match kind.as_str() {
            "d" => "the primary key (or none)",
            "n" => "NOTHING",
            "i" => "an index",
            _ => "FULL",
        }
        .to_owned(),
        column: t.column.clone().unwrap_or_default(),
    })
}

pub async fn wal_level(src: &Client) -> Result<(), SqlError> {
    let level: String = src
        .query_one("SELECT pg_catalog.current_setting('wal_level')", &[])
        .await
        .map_err(step("reading wal_level"))?
        .get(0);
    if level == "logical" {
        Ok(())
    } else {
        Err(SqlError::WalLevel(level))
    }
}

/// Whether `table` (as the source quotes it) exists on the target.
pub async fn exists(dst: &Client, table: &str) -> Result<bool, SqlError> {
    Ok(dst
        .query_one(
            "SELECT pg_catalog.to_regclass($1::pg_catalog.text) IS NOT NULL",
            &[&table],
        )
        .await
        .map_err(step("looking for the table on the target"))?
        .get(0))
}

/// Whether the schema exists on the target.
pub async fn schema_exists(dst: &Client, schema: &str) -> Result<bool, SqlError> {
    Ok(dst
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname OPERATOR(pg_catalog.=) $1::pg_catalog.text)",
            &[&schema],
        )
        .await
        .map_err(step("looking for the schema on the target"))?
        .get(0))
}

/// The tenant's rows in `t` and their checksum (sum of a hash of each
/// row's text): equal on both sides when every row arrived once.
pub async fn checksum(c: &Client, t: &Table, tenant: &str) -> Result<(i64, i64), SqlError> {
    let sql: String = c
        .query_one(
            "SELECT pg_catalog.format('SELECT pg_catalog.count(*), COALESCE(pg_catalog.sum(pg_catalog.hashtext(r::pg_catalog.text)::pg_catalog.int8), 0)::pg_catalog.int8 FROM %s r%s', \
                    $1::pg_catalog.text::pg_catalog.regclass, \
                    CASE WHEN $2::pg_catalog.text IS NULL THEN '' \
                         ELSE pg_catalog.format(' WHERE r.%I OPERATOR(pg_catalog.=) $1::pg_catalog.text', $2::pg_catalog.text) END)",
            &[&t.name, &t.column],
        )
        .await
        .map_err(step("preparing a checksum"))?
        .get(0);
    let row = match &t.column {
        Some(_) => c.query_one(&sql, &[&tenant]).await,
        None => c.query_one(&sql, &[]).await,
    }
    .map_err(step("checksumming the tenant's rows"))?;
    Ok((row.get(0), row.get(1)))
}

/// The tenant's row count in `t` on the target, to refuse a target that
/// has some already.
pub async fn ensure_empty(dst: &Client, t: &Table, tenant: &str) -> Result<(), SqlError> {
    let (rows, _) = checksum(dst, t, tenant).await?;
    if rows == 0 {
        return Ok(());
    }
    Err(SqlError::TargetNotEmpty {
        tenant: tenant.to_owned(),
        table: t.name.clone(),
        rows,
    })
}

/// CREATE PUBLICATION on the source: the tenant's rows of each table
/// (`WHERE (column = 'id')`), or every table of its schema. A row filter
/// on a partitioned table holds only when changes are published through
/// the root (`publish_via_partition_root`; PostgreSQL refuses the filter
/// otherwise), and the target's root routes them to its partitions.
pub async fn create_publication(
    src: &Client,
    names: &ReplicationNames,
    tables: &[Table],
    schema: Option<&str>,
    tenant: &str,
) -> Result<(), SqlError> {
    let sql: String = match schema {
        Some(s) => src
            .query_one(
                "SELECT pg_catalog.format('CREATE PUBLICATION %I FOR TABLES IN SCHEMA %I', $1::pg_catalog.text, $2::pg_catalog.text)",
                &[&names.publication, &s],
            )
            .await,
        None => {
            let list: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
            let cols: Vec<&str> = tables
                .iter()
                .map(|t| t.column.as_deref().unwrap_or("tenant_id"))
                .collect();
            src.query_one(
                "SELECT pg_catalog.format('CREATE PUBLICATION %I FOR %s WITH (publish_via_partition_root = true)', $1::pg_catalog.text, \
                        pg_catalog.string_agg(pg_catalog.format('TABLE %s WHERE (%I OPERATOR(pg_catalog.=) %L)', \
                                              t::pg_catalog.regclass, c, $4::pg_catalog.text), ', ' ORDER BY o)) \
                   FROM unnest($2::pg_catalog.text[], $3::pg_catalog.text[]) WITH ORDINALITY AS x(t, c, o)",
                &[&names.publication, &list, &cols, &tenant],
            )
            .await
        }
    }
    .map_err(step("composing CREATE PUBLICATION"))?
    .get(0);
    src.batch_execute(&sql)
        .await
        .map_err(step("CREATE PUBLICATION on the source"))
}

/// CREATE SUBSCRIPTION on the target (copy_data: the initial sync), with
/// synchronous_commit on so its progress reaches the source at once.
pub async fn create_subscription(
    dst: &Client,
    names: &ReplicationNames,
    publisher: &str,
) -> Result<(), SqlError> {
    let sql: String = dst
        .query_one(
            "SELECT pg_catalog.format('CREATE SUBSCRIPTION %I CONNECTION %L PUBLICATION %I \
                    WITH (copy_data = true, create_slot = true, slot_name = %L, synchronous_commit = ''on'')', \
                    $1::pg_catalog.text, $2::pg_catalog.text, $3::pg_catalog.text, $4::pg_catalog.text)",
            &[&names.subscription, &publisher, &names.publication, &names.slot],
        )
        .await
        .map_err(step("composing CREATE SUBSCRIPTION"))?
        .get(0);
    dst.batch_execute(&sql)
        .await
        .map_err(step("CREATE SUBSCRIPTION on the target"))
}

/// Tables of the subscription not yet in sync ('r' or 's') on the target;
/// None when the subscription does not exist.
pub async fn unsynced(dst: &Client, names: &ReplicationNames) -> Result<Option<i64>, SqlError> {
    let row = dst
        .query_one(
            "SELECT (SELECT s.oid FROM pg_catalog.pg_subscription s WHERE s.subname OPERATOR(pg_catalog.=) $1::pg_catalog.text) IS NOT NULL, \
                    (SELECT pg_catalog.count(*) FROM pg_catalog.pg_subscription_rel r JOIN pg_catalog.pg_subscription s ON s.oid OPERATOR(pg_catalog.=) r.srsubid \
                      WHERE s.subname OPERATOR(pg_catalog.=) $1::pg_catalog.text \
                        AND r.srsubstate OPERATOR(pg_catalog.<>) ALL (ARRAY['r', 's']::pg_catalog.\"char\"[]))",
            &[&names.subscription],
        )
        .await
        .map_err(step("reading the subscription's state"))?;
    let exists: bool = row.get(0);
    Ok(exists.then(|| row.get(1)))
}

/// The source's WAL position now (pg_lsn as text): where its next record
/// goes, once what precedes it is flushed (a commit with
/// synchronous_commit on flushes it, whatever the server's setting), so
/// the slot can confirm it.
pub async fn current_lsn(src: &Client) -> Result<String, SqlError> {
    let lsn: String = src
        .query_one(
            "SELECT pg_catalog.pg_current_wal_insert_lsn()::pg_catalog.text",
            &[],
        )
        .await
        .map_err(step("reading the source's WAL position"))?
        .get(0);
    src.batch_execute(
        "BEGIN; SET LOCAL synchronous_commit = on; SELECT pg_catalog.pg_current_xact_id(); COMMIT",
    )
    .await
    .map_err(step("flushing the source's WAL"))?;
    Ok(lsn)
}

/// Bytes the subscription's slot still has to confirm up to `lsn` (0:
/// the target has everything the source wrote up to `lsn`).
pub async fn behind(src: &Client, names: &ReplicationNames, lsn: &str) -> Result<i64, SqlError> {
    let row = src
        .query_one(
            "SELECT COALESCE(pg_catalog.pg_wal_lsn_diff($2::pg_catalog.text::pg_catalog.pg_lsn, \
                    (SELECT s.confirmed_flush_lsn FROM pg_catalog.pg_replication_slots s \
                      WHERE s.slot_name OPERATOR(pg_catalog.=) $1::pg_catalog.text)), -1)::pg_catalog.int8",
            &[&names.slot, &lsn],
        )
        .await
        .map_err(step("reading the slot's progress"))?;
    Ok(row.get::<_, i64>(0).max(0))
}

/// The sequences the tenant's tables use (owned by a column, named by a
/// column's default such as `nextval('s')`, or in its schema), with their
/// last values on `c`.
pub async fn sequences(
    c: &Client,
    tables: &[Table],
    schema: Option<&str>,
) -> Result<Vec<(String, Option<i64>)>, SqlError> {
    let list: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    let rows = c
        .query(
            "SELECT DISTINCT s.seqrelid::pg_catalog.regclass::pg_catalog.text, q.last_value \
               FROM pg_catalog.pg_sequence s \
               JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) s.seqrelid \
               JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) k.relnamespace \
               JOIN pg_catalog.pg_sequences q ON q.schemaname OPERATOR(pg_catalog.=) n.nspname AND q.sequencename OPERATOR(pg_catalog.=) k.relname \
              WHERE n.nspname OPERATOR(pg_catalog.=) $2::pg_catalog.text \
                 OR EXISTS (SELECT FROM pg_catalog.pg_depend d \
                             WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass \
                               AND d.objid OPERATOR(pg_catalog.=) s.seqrelid AND d.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['a', 'i']::pg_catalog.\"char\"[]) \
                               AND d.refobjid OPERATOR(pg_catalog.=) ANY (SELECT pg_catalog.to_regclass(x) FROM unnest($1::pg_catalog.text[]) x)) \
                 OR EXISTS (SELECT FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_attrdef ad ON ad.oid OPERATOR(pg_catalog.=) d.objid \
                             WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_attrdef'::pg_catalog.regclass \
                               AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass \
                               AND d.refobjid OPERATOR(pg_catalog.=) s.seqrelid \
                               AND ad.adrelid OPERATOR(pg_catalog.=) ANY (SELECT pg_catalog.to_regclass(x) FROM unnest($1::pg_catalog.text[]) x)) \
              ORDER BY 1",
            &[&list, &schema],
        )
        .await
        .map_err(step("reading the sequences"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Bring the target's sequence past `value` (never back); its value now.
pub async fn advance_sequence(dst: &Client, seq: &str, value: i64) -> Result<i64, SqlError> {
    Ok(dst
        .query_one(
            "SELECT pg_catalog.setval(q.s, GREATEST($2::pg_catalog.int8, COALESCE(pg_catalog.pg_sequence_last_value(q.s), $2::pg_catalog.int8)), true) \
               FROM (SELECT $1::pg_catalog.text::pg_catalog.regclass AS s) q",
            &[&seq, &value],
        )
        .await
        .map_err(step("advancing a sequence on the target"))?
        .get(0))
}

/// Register a copied table with pg_tenant on the target (`tenant.protect`).
pub async fn protect(dst: &Client, t: &Table) -> Result<(), SqlError> {
    let Some(col) = &t.column else { return Ok(()) };
    dst.execute(
        "SELECT tenant.protect($1::pg_catalog.text::pg_catalog.regclass, $2::pg_catalog.name)",
        &[&t.name, &col],
    )
    .await
    .map_err(step("tenant.protect on the target"))?;
    Ok(())
}

/// `tenant.fence_tenant` / `unfence_tenant` on one server; whether it
/// changed anything.
pub async fn fence(c: &Client, tenant: &str, reason: Option<&str>) -> Result<bool, SqlError> {
    Ok(match reason {
        Some(r) => c
            .query_one("SELECT tenant.fence_tenant($1, $2)", &[&tenant, &r])
            .await
            .map_err(step("tenant.fence_tenant"))?,
        None => c
            .query_one("SELECT tenant.unfence_tenant($1)", &[&tenant])
            .await
            .map_err(step("tenant.unfence_tenant"))?,
    }
    .get(0))
}

/// End the tenant's backends on the source: `tenant.tenant_backends(id)`
/// when the server has it; None when it does not.
pub async fn end_backends(src: &Client, tenant: &str) -> Result<Option<i64>, SqlError> {
    let has: bool = src
        .query_one(
            "SELECT pg_catalog.to_regprocedure('tenant.tenant_backends(text)') IS NOT NULL",
            &[],
        )
        .await
        .map_err(step("looking for tenant.tenant_backends"))?
        .get(0);
    if !has {
        return Ok(None);
    }
    let n: i64 = src
        .query_one(
            "SELECT pg_catalog.count(*) FILTER (WHERE pg_catalog.pg_terminate_backend(b, 5000)) \
               FROM tenant.tenant_backends($1) b",
            &[&tenant],
        )
        .await
        .map_err(step("ending the tenant's backends on the source"))?
        .get(0);
    Ok(Some(n))
}

/// Drop the subscription on the target (and with it its slot on the
/// source); whether there was one.
pub async fn drop_subscription(dst: &Client, names: &ReplicationNames) -> Result<bool, SqlError> {
    if unsynced(dst, names).await?.is_none() {
        return Ok(false);
    }
    let sql: String = dst
        .query_one(
            "SELECT pg_catalog.format('DROP SUBSCRIPTION IF EXISTS %I', $1::pg_catalog.text)",
            &[&names.subscription],
        )
        .await
        .map_err(step("composing DROP SUBSCRIPTION"))?
        .get(0);
    dst.batch_execute(&sql)
        .await
        .map_err(step("DROP SUBSCRIPTION on the target"))?;
    Ok(true)
}

/// Drop the publication and a slot left behind (an inactive one) on the
/// source; whether there was anything.
pub async fn drop_publication(src: &Client, names: &ReplicationNames) -> Result<bool, SqlError> {
    let row = src
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_publication WHERE pubname OPERATOR(pg_catalog.=) $1::pg_catalog.text), \
                    (SELECT pg_catalog.count(pg_catalog.pg_drop_replication_slot(s.slot_name)) FROM pg_catalog.pg_replication_slots s \
                      WHERE s.slot_name OPERATOR(pg_catalog.=) $2::pg_catalog.text AND NOT s.active)",
            &[&names.publication, &names.slot],
        )
        .await
        .map_err(step("dropping the slot left on the source"))?;
    let publication: bool = row.get(0);
    let slots: i64 = row.get(1);
    if publication {
        let sql: String = src
            .query_one(
                "SELECT pg_catalog.format('DROP PUBLICATION IF EXISTS %I', $1::pg_catalog.text)",
                &[&names.publication],
            )
            .await
            .map_err(step("composing DROP PUBLICATION"))?
            .get(0);
        src.batch_execute(&sql)
            .await
            .map_err(step("DROP PUBLICATION on the source"))?;
    }
    Ok(publication || slots > 0)
}

/// Delete the tenant's rows of `t` on `c` (a schema tenant's table:
/// every row); how many.
///
/// A schema tenant's table is its role's: its triggers and rules run the
/// tenant's functions with the privileges of whoever deletes. The DELETE
/// then runs as the table's owner (`SET LOCAL ROLE`, row security off so
/// a forced policy is an error, not rows silently kept), never as this
/// superuser session; a table a superuser owns is deleted from as it is.
pub async fn delete_rows(c: &Client, t: &Table, tenant: &str) -> Result<u64, SqlError> {
    let row = c
        .query_one(
            "SELECT pg_catalog.format('DELETE FROM %s r%s', $1::pg_catalog.text::pg_catalog.regclass, \
                    CASE WHEN $2::pg_catalog.text IS NULL THEN '' \
                         ELSE pg_catalog.format(' WHERE r.%I OPERATOR(pg_catalog.=) $1::pg_catalog.text', $2::pg_catalog.text) END), \
                    (SELECT CASE WHEN o.rolsuper THEN NULL ELSE pg_catalog.quote_ident(o.rolname) END \
                       FROM pg_catalog.pg_class k JOIN pg_catalog.pg_roles o ON o.oid OPERATOR(pg_catalog.=) k.relowner \
                      WHERE k.oid OPERATOR(pg_catalog.=) $1::pg_catalog.text::pg_catalog.regclass)",
            &[&t.name, &t.column],
        )
        .await
        .map_err(step("composing DELETE"))?;
    let sql: String = row.get(0);
    let owner: Option<String> = row.get(1);
    match (&t.column, owner) {
        (None, Some(owner)) => {
            let out = c
                .simple_query(&format!(
                    "BEGIN; SET LOCAL ROLE {owner}; SET LOCAL row_security = off; {sql}; COMMIT"
                ))
                .await;
            let out = match out {
                Ok(o) => o,
                Err(e) => {
                    let _ = c.batch_execute("ROLLBACK").await;
                    return Err(step("deleting the tenant's rows as the table's owner")(e));
                }
            };
            Ok(out
                .iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::CommandComplete(n) => Some(*n),
                    _ => None,
                })
                .nth(3)
                .unwrap_or(0))
        }
        (Some(_), _) => c
            .execute(&sql, &[&tenant])
            .await
            .map_err(step("deleting the tenant's rows")),
        (None, None) => c
            .execute(&sql, &[])
            .await
            .map_err(step("deleting the tenant's rows")),
    }
}

#[cfg(test)]
mod tests {
    use super::ReplicationNames;

    #[test]
    fn replication_names_use_only_slot_characters_and_tell_ids_apart() {
        let a = ReplicationNames::of("a-b");
        let b = ReplicationNames::of("a_b");
        assert_ne!(a.slot, b.slot);
        let long = ReplicationNames::of(&"x".repeat(63));
        assert!(long.slot.len() <= 63, "{}", long.slot);
        for n in [&a.slot, &b.slot, &long.slot] {
            assert!(n
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        }
    }
}
