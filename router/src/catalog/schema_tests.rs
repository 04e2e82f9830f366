use super::*;
use bytes::BytesMut;
use tokio_postgres::types::{ToSql, Type};

/// A row as PostgreSQL sends it in binary: each column's type and bytes.
struct Fake(Vec<(Type, Option<BytesMut>)>);

impl Fake {
    fn new() -> Fake {
        Fake(Vec::new())
    }

    fn with(mut self, ty: Type, v: &(dyn ToSql + Sync)) -> Fake {
        let mut buf = BytesMut::new();
        let raw = match v.to_sql_checked(&ty, &mut buf) {
            Ok(tokio_postgres::types::IsNull::Yes) => None,
            Ok(tokio_postgres::types::IsNull::No) => Some(buf),
            Err(e) => panic!("{e}"),
        };
        self.0.push((ty, raw));
        self
    }

    fn base(id: &str) -> Fake {
        Fake::new()
            .with(Type::TEXT, &id)
            .with(Type::BOOL, &true)
            .with(Type::TEXT, &"rls")
            .with(Type::TEXT, &None::<String>)
            .with(Type::TEXT, &Some("s1"))
            .with(Type::INT4, &5i32)
            .with(Type::INT4, &100i32)
            .with(Type::FLOAT4, &1.5f32)
            .with(Type::INT4, &700i32)
            .with(Type::INT8, &1_000_000i64)
    }

    fn pool(self, mode: Option<&str>) -> Fake {
        self.with(Type::BOOL, &true)
            .with(Type::INT4, &4i32)
            .with(Type::INT4, &1i32)
            .with(Type::TEXT, &mode)
    }
}

impl Columns for Fake {
    fn count(&self) -> usize {
        self.0.len()
    }

    fn column<'a, T: FromSql<'a>>(&'a self, i: usize) -> Result<T, String> {
        let (ty, raw) = self.0.get(i).ok_or("no such column")?;
        if !T::accepts(ty) {
            return Err(format!(
                "cannot convert {ty} to {}",
                std::any::type_name::<T>()
            ));
        }
        T::from_sql_nullable(ty, raw.as_deref()).map_err(|e| e.to_string())
    }
}

fn schema(extversion: &str) -> Schema {
    Schema {
        extversion: extversion.into(),
        version: Version::parse(extversion).expect("a version"),
        read_at: Instant::now(),
    }
}

#[test]
fn versions_map_to_the_shapes_they_have() {
    let v = |s| Version::parse(s);
    assert_eq!(v("0.1.0"), Some(Version::V0_1));
    assert_eq!(v("0.2.0"), Some(Version::V0_1));
    assert_eq!(v("0.3.0"), Some(Version::V0_3));
    assert_eq!(v("0.4.0"), Some(Version::V0_4));
    assert_eq!(v("0.5.0"), Some(Version::V0_4));
    assert_eq!(v("0.6.0"), Some(Version::V0_6));
    assert_eq!(v("0.7.0"), Some(Version::V0_7));
    assert_eq!(v("0.8.0"), Some(Version::V0_8));
    assert_eq!(v("0.9.0"), Some(Version::V0_9));
    assert_eq!(v("0.12.1"), Some(Version::V0_9), "later: the newest known");
    assert_eq!(v("1.0.0"), Some(Version::V0_9));
    assert_eq!(v("0.7.0-dev"), Some(Version::V0_7));
    assert_eq!(v("banana"), None);
    assert_eq!(v("1"), None);
    assert!(!Version::V0_1.has_secrets() && Version::V0_3.has_secrets());
    assert!(!Version::V0_6.has_pages() && Version::V0_7.has_pages());
}

#[test]
fn only_an_older_schema_is_read_again_and_at_most_once_a_second() {
    let s = schema("0.5.0");
    let t = s.read_at;
    assert!(!s.due(t));
    assert!(s.due(t + Duration::from_secs(1)));
    let v7 = schema("0.7.0");
    assert!(
        v7.due(v7.read_at + Duration::from_secs(1)),
        "0.7.0 is older now"
    );
    let v8 = schema("0.8.0");
    assert!(
        v8.due(v8.read_at + Duration::from_secs(1)),
        "0.8.0 is older now"
    );
    let newest = schema("0.9.0");
    assert!(!newest.due(t + Duration::from_secs(3600)));
}

#[test]
fn columns_follow_the_version() {
    let old = schema("0.2.0");
    assert_eq!(
        old.lookups().columns(),
        "r.id, r.enabled, r.isolation, r.database_name, r.schema_name, r.max_connections, \
         r.qps_limit, r.burst_multiplier, r.max_query_ms, r.max_result_bytes"
    );
    let v3 = schema("0.3.0");
    assert!(v3
        .lookups()
        .columns()
        .ends_with("r.max_result_bytes, tenant.auth_secret(r.id) AS auth_secret"));
    assert!(v3.pages().columns().ends_with("r.max_result_bytes"));
    let v6 = schema("0.6.0");
    assert!(v6.pages().columns().ends_with(
        "r.max_result_bytes, r.dedicated_pool, r.pool_size, r.min_idle, r.pool_mode, \
         r.client_idle_timeout_ms"
    ));
}

#[test]
fn a_0_1_row_has_the_defaults_for_what_came_later() {
    let i = schema("0.1.0")
        .lookups()
        .decode(&Fake::base("acme"), 7)
        .expect("decoded");
    assert_eq!(i.id, "acme");
    assert!(i.enabled);
    assert_eq!(
        (i.database_name, i.schema_name.as_deref()),
        (None, Some("s1"))
    );
    assert_eq!(
        (i.max_connections, i.qps_limit, i.max_query_ms),
        (5, 100, 700)
    );
    assert_eq!((i.burst_multiplier, i.max_result_bytes), (1.5, 1_000_000));
    assert_eq!(i.pool, PoolSettings::default());
    assert_eq!((i.client_idle_timeout_ms, i.read_seq), (0, 7));
    assert!(i.auth_secret.is_none());
}

#[test]
fn a_0_3_lookup_reads_the_secret() {
    let d = schema("0.3.0").lookups();
    let row = Fake::base("acme").with(Type::TEXT, &Some("SCRAM-SHA-256$..."));
    let i = d.decode(&row, 1).expect("decoded");
    assert_eq!(i.auth_secret, Some(Redacted("SCRAM-SHA-256$...".into())));
    let none = Fake::base("acme").with(Type::TEXT, &None::<String>);
    assert!(d.decode(&none, 1).expect("decoded").auth_secret.is_none());
}

#[test]
fn a_0_4_row_has_its_pool_and_a_0_6_row_its_idle_bound() {
    let i = schema("0.5.0")
        .pages()
        .decode(&Fake::base("a").pool(Some("transaction")), 1)
        .expect("decoded");
    assert_eq!(
        i.pool,
        PoolSettings {
            mode: PoolMode::Transaction,
            dedicated: true,
            size: 4,
            min_idle: 1
        }
    );
    assert_eq!(i.client_idle_timeout_ms, 0);
    let no_mode = schema("0.4.0")
        .pages()
        .decode(&Fake::base("a").pool(None), 1)
        .expect("decoded");
    assert_eq!(no_mode.pool, PoolSettings::default(), "no mode: defaults");
    let d = schema("0.7.0").lookups();
    let row = |idle: Option<i32>| {
        Fake::base("a")
            .pool(Some("session"))
            .with(Type::INT4, &idle)
            .with(Type::TEXT, &None::<String>)
    };
    let idle = |r: &Fake| d.decode(r, 1).expect("decoded").client_idle_timeout_ms;
    assert_eq!(idle(&row(Some(45_000))), 45_000);
    assert_eq!(idle(&row(None)), 0);
}

#[test]
fn a_row_of_another_shape_is_an_error_not_a_panic() {
    let d = schema("0.6.0").pages();
    // A 0.4.0 row where 0.6.0's is expected: one column short.
    let short = d.decode(&Fake::base("a").pool(Some("session")), 1);
    match short {
        Err(CatalogError::Shape { version, detail }) => {
            assert_eq!(version, "0.6.0");
            assert!(detail.contains("14 columns where 15"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    // NULL where the catalog never has one.
    let mut null = Fake::base("a");
    null.0[5] = (Type::INT4, None);
    let e = schema("0.1.0").pages().decode(&null, 1).expect_err("NULL");
    assert!(e.to_string().contains("column 5 (max_connections)"), "{e}");
    // Another type.
    let mut text = Fake::base("a");
    text.0[1] = (Type::TEXT, Some(BytesMut::from(&b"t"[..])));
    let e = schema("0.1.0").pages().decode(&text, 1).expect_err("type");
    assert!(e.to_string().contains("column 1 (enabled)"), "{e}");
    assert!(e.to_string().contains("pg_tenant 0.1.0"), "{e}");
}

#[test]
fn a_0_8_row_carries_the_sealed_context_of_a_database_tenant() {
    let v8 = schema("0.8.0");
    assert!(v8.lookups().columns().ends_with(
        "r.client_idle_timeout_ms, r.context_document, tenant.auth_secret(r.id) AS auth_secret"
    ));
    assert!(v8
        .pages()
        .columns()
        .ends_with("r.client_idle_timeout_ms, r.context_document"));
    let row = |doc: Option<&str>| {
        Fake::base("a")
            .pool(Some("session"))
            .with(Type::INT4, &0i32)
            .with(Type::TEXT, &doc)
            .with(Type::TEXT, &None::<String>)
    };
    let d = v8.lookups();
    let doc = r#"{"tenant": "a", "isolation": "database"}"#;
    let i = d.decode(&row(Some(doc)), 1).expect("decoded");
    assert_eq!(i.context_document.as_deref(), Some(doc));
    let none = d.decode(&row(None), 1).expect("decoded");
    assert!(none.context_document.is_none());
    // A 0.7.0 row (no document) where 0.8.0's is expected: a shape error.
    let short = Fake::base("a")
        .pool(Some("session"))
        .with(Type::INT4, &0i32)
        .with(Type::TEXT, &None::<String>);
    assert!(matches!(
        d.decode(&short, 1),
        Err(CatalogError::Shape { .. })
    ));
    // Before 0.8.0: no document.
    let v7 = schema("0.7.0").lookups();
    assert!(v7
        .decode(&short, 1)
        .expect("decoded")
        .context_document
        .is_none());
}

#[test]
fn a_0_9_row_names_its_upstream_and_older_rows_live_on_main() {
    let v9 = schema("0.9.0");
    assert!(v9
        .lookups()
        .columns()
        .ends_with("r.context_document, r.upstream, tenant.auth_secret(r.id) AS auth_secret"));
    assert!(v9
        .pages()
        .columns()
        .ends_with("r.context_document, r.upstream"));
    let row = |upstream: Option<&str>| {
        Fake::base("a")
            .pool(Some("session"))
            .with(Type::INT4, &0i32)
            .with(Type::TEXT, &Some("{}"))
            .with(Type::TEXT, &upstream)
            .with(Type::TEXT, &None::<String>)
    };
    let d = v9.lookups();
    let on = |u| d.decode(&row(u), 1).expect("decoded").upstream;
    assert_eq!(on(Some("b")), Some("b".to_owned()));
    assert_eq!(on(None), None, "NULL: the main upstream");
    assert_eq!(on(Some("main")), None, "\"main\" is the main upstream");
    // A 0.8.0 row (no upstream) where 0.9.0's is expected: a shape error.
    let short = Fake::base("a")
        .pool(Some("session"))
        .with(Type::INT4, &0i32)
        .with(Type::TEXT, &None::<String>)
        .with(Type::TEXT, &None::<String>);
    assert!(matches!(
        d.decode(&short, 1),
        Err(CatalogError::Shape { .. })
    ));
    // A 0.8.0 catalog: every tenant on the main upstream.
    let v8 = schema("0.8.0").lookups();
    assert_eq!(v8.decode(&short, 1).expect("decoded").upstream, None);
}
