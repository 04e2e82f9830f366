//! The catalog fields a tenants file declares: one table ([`TENANT_FIELDS`],
//! [`DEFAULTS_FIELDS`]) that parsing, the diff, the SQL calls and export all
//! read. A new catalog column is one line here (its name is the column's and
//! the `create_tenant`/`alter_tenant` argument's).
//!
//! Values are kept as JSON values in one canonical form per kind (what
//! `row_to_json` gives for the column, floats as the shortest text of the
//! `real`), so the file's and the catalog's compare with `==`.

use serde_json::Value;
use tokio_postgres::types::ToSql;

/// The SQL type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// `name`: at most 63 bytes (longer would be cut, and differ forever).
    Name,
    Int4,
    Int8,
    Float4,
    Bool,
    TextArray,
    NameArray,
}

/// What a field is when the file omits it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Omitted {
    /// NULL: the defaults row (a limit) or none.
    Null,
    /// `create_tenant`'s default for a NOT NULL column.
    Value(&'static str),
    /// The tenant's id (`name`).
    Id,
}

/// One catalog field.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub omitted: Omitted,
}

const fn f(name: &'static str, kind: Kind, omitted: Omitted) -> Field {
    Field {
        name,
        kind,
        omitted,
    }
}

use Kind::*;
use Omitted::{Id, Null};
const fn v(json: &'static str) -> Omitted {
    Omitted::Value(json)
}

/// Every column of `tenant.tenants` a file declares, in the order export
/// writes them (`id` is the key and not listed; `created_at`, `updated_at`
/// and `lock_space` are the catalog's own). Nullable fields are those whose
/// `omitted` is `Null`: `alter_tenant(reset => ...)` clears them.
pub const TENANT_FIELDS: &[Field] = &[
    f("name", Text, Id),
    f("isolation", Text, v(r#""rls""#)),
    f("database_name", Name, Null),
    f("schema_name", Name, Null),
    f("role_name", Name, Null),
    f("shared_schemas", NameArray, Null),
    f("upstream", Text, Null),
    f("enabled", Bool, v("true")),
    f("login_roles", TextArray, Null),
    f("allow_ddl", Bool, v("false")),
    f("read_only", Bool, v("false")),
    f(
        "allowed_operations",
        TextArray,
        v(r#"["select","insert","update","delete"]"#),
    ),
    f("allow_large_objects", Bool, v("false")),
    f("max_connections", Int4, Null),
    f("qps_limit", Int4, Null),
    f("burst_multiplier", Float4, Null),
    f("max_query_ms", Int4, Null),
    f("max_result_bytes", Int8, Null),
    f("client_idle_timeout_ms", Int4, Null),
    f("pool_mode", Text, Null),
    f("dedicated_pool", Bool, v("false")),
    f("pool_size", Int4, Null),
    f("min_idle", Int4, Null),
    f("statement_timeout_ms", Int4, Null),
    f("idle_in_transaction_timeout_ms", Int4, Null),
    f("work_mem_kb", Int4, Null),
    f("maintenance_work_mem_kb", Int4, Null),
    f("temp_file_limit_kb", Int4, Null),
    f("max_advisory_locks", Int4, Null),
];

/// Columns of `tenant.tenants` that are not declared (the catalog sets them).
pub const CATALOG_OWN: &[&str] = &["id", "created_at", "updated_at", "lock_space"];

/// The arguments of `tenant.set_defaults` (every column of `tenant.defaults`
/// but `singleton`); omitted ones take the function's (built-in) default.
pub const DEFAULTS_FIELDS: &[Field] = &[
    f("max_connections", Int4, Null),
    f("qps_limit", Int4, Null),
    f("burst_multiplier", Float4, Null),
    f("max_query_ms", Int4, Null),
    f("max_result_bytes", Int8, Null),
    f("client_idle_timeout_ms", Int4, Null),
    f("pool_mode", Text, Null),
    f("pool_size", Int4, Null),
    f("min_idle", Int4, Null),
    f("statement_timeout_ms", Int4, Null),
    f("idle_in_transaction_timeout_ms", Int4, Null),
    f("work_mem_kb", Int4, Null),
    f("maintenance_work_mem_kb", Int4, Null),
    f("temp_file_limit_kb", Int4, Null),
    f("max_advisory_locks", Int4, Null),
];

/// The field called `name` in `fields`.
pub fn field<'a>(fields: &'a [Field], name: &str) -> Option<&'a Field> {
    fields.iter().find(|f| f.name == name)
}

impl Field {
    /// The value an omitted field stands for (Null for a nullable one).
    pub fn omitted_value(&self, id: &str) -> Value {
        match self.omitted {
            Omitted::Null => Value::Null,
            Omitted::Id => Value::String(id.to_string()),
            Omitted::Value(json) => serde_json::from_str(json).unwrap_or(Value::Null),
        }
    }

    pub fn nullable(&self) -> bool {
        self.omitted == Omitted::Null
    }

    /// The value in canonical form, or why it is not one of this kind.
    /// JSON null is the omitted value.
    pub fn canonical(&self, value: &Value) -> Result<Value, String> {
        if value.is_null() {
            return Ok(Value::Null);
        }
        let bad = |expected: &str| Err(format!("expected {expected}, got {}", describe(value)));
        match self.kind {
            Text => match value {
                Value::String(_) => Ok(value.clone()),
                _ => bad("a string"),
            },
            Name => match value.as_str() {
                Some(s) => name_ok(s).map(|()| value.clone()),
                None => bad("a string (a PostgreSQL name)"),
            },
            Int4 => match value.as_i64() {
                Some(n) if i32::try_from(n).is_ok() => Ok(Value::from(n)),
                Some(n) => Err(format!("{n} is out of range for a 32-bit integer")),
                None => bad("an integer"),
            },
            Int8 => match value.as_i64() {
                Some(n) => Ok(Value::from(n)),
                None => bad("an integer"),
            },
            Float4 => match non_finite_text(value) {
                Some(text) => Ok(Value::from(text)),
                None => match value.as_f64() {
                    Some(x) if x.is_finite() && (x as f32).is_finite() => Ok(float4(x as f32)),
                    Some(x) => Err(format!("{x} is out of range for a real")),
                    None => bad("a number"),
                },
            },
            Bool => match value {
                Value::Bool(_) => Ok(value.clone()),
                _ => bad("true or false"),
            },
            TextArray | NameArray => {
                let Some(items) = value.as_array() else {
                    return bad("an array of strings");
                };
                for item in items {
                    match item.as_str() {
                        Some(s) if self.kind == NameArray => name_ok(s)?,
                        Some(_) => {}
                        None => return bad("an array of strings"),
                    }
                }
                Ok(value.clone())
            }
        }
    }

    /// The SQL argument for `value` (canonical), cast to the argument's type.
    pub fn param(&self, value: &Value) -> (Box<dyn ToSql + Sync + Send>, &'static str) {
        match self.kind {
            Text => (
                Box::new(value.as_str().map(str::to_owned)),
                "pg_catalog.text",
            ),
            Name => (
                Box::new(value.as_str().map(str::to_owned)),
                "pg_catalog.text::pg_catalog.name",
            ),
            Int4 => (
                Box::new(value.as_i64().and_then(|n| i32::try_from(n).ok())),
                "pg_catalog.int4",
            ),
            Int8 => (Box::new(value.as_i64()), "pg_catalog.int8"),
            Float4 => (
                Box::new(match non_finite_text(value) {
                    Some("NaN") => Some(f32::NAN),
                    Some("Infinity") => Some(f32::INFINITY),
                    Some(_) => Some(f32::NEG_INFINITY),
                    None => value.as_f64().map(|x| x as f32),
                }),
                "pg_catalog.float4",
            ),
            Bool => (Box::new(value.as_bool()), "pg_catalog.bool"),
            TextArray => (Box::new(strings(value)), "pg_catalog.text[]"),
            NameArray => (
                Box::new(strings(value)),
                "pg_catalog.text[]::pg_catalog.name[]",
            ),
        }
    }
}

/// The key of the marker a TOML `nan` or `inf` becomes ([`non_finite`]).
const NON_FINITE: &str = "non-finite float";

/// A float JSON cannot hold (NaN, ±infinity, which a `real` column can:
/// `burst_multiplier >= 1` lets both through), as read from TOML: a marker
/// that a real field takes as its canonical text and any other reports.
pub fn non_finite(x: f64) -> Value {
    let text = if x.is_nan() {
        "NaN"
    } else if x > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    };
    serde_json::json!({ NON_FINITE: text })
}

/// A real that is not a finite number, as PostgreSQL writes it (what
/// `row_to_json` gives, and the canonical form): from that text, or from
/// the marker of a TOML `nan`/`inf`.
fn non_finite_text(value: &Value) -> Option<&'static str> {
    let text = match value {
        Value::String(s) => s.as_str(),
        Value::Object(m) if m.len() == 1 => m.get(NON_FINITE)?.as_str()?,
        _ => return None,
    };
    ["NaN", "Infinity", "-Infinity"]
        .into_iter()
        .find(|t| *t == text)
}

fn strings(value: &Value) -> Option<Vec<String>> {
    value.as_array().map(|a| {
        a.iter()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    })
}

/// A real as its shortest decimal text reads back (1.1, not 1.100000023841858).
fn float4(x: f32) -> Value {
    format!("{x}")
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn name_ok(s: &str) -> Result<(), String> {
    if s.is_empty() {
        Err("an empty name".to_string())
    } else if s.len() > 63 {
        Err(format!(
            "\"{s}\" is longer than 63 bytes (PostgreSQL would cut it)"
        ))
    } else {
        Ok(())
    }
}

/// A value as the error messages and the diff show it.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "(default)".to_string(),
        Value::Object(_) => match non_finite_text(value) {
            Some(t) => t.to_string(),
            None => value.to_string(),
        },
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_field_has_one_entry() {
        for list in [TENANT_FIELDS, DEFAULTS_FIELDS] {
            let mut names: Vec<_> = list.iter().map(|f| f.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), list.len());
        }
    }

    #[test]
    fn omitted_values_parse_and_are_canonical() {
        for f in TENANT_FIELDS {
            let v = f.omitted_value("acme");
            assert_eq!(f.canonical(&v).as_ref(), Ok(&v), "{}", f.name);
            assert_eq!(v.is_null(), f.nullable(), "{}", f.name);
        }
    }

    #[test]
    fn values_are_checked_by_kind() {
        let max = field(TENANT_FIELDS, "max_connections").unwrap();
        assert_eq!(max.canonical(&json!(10)), Ok(json!(10)));
        assert!(max
            .canonical(&json!("ten"))
            .unwrap_err()
            .contains("integer"));
        assert!(max
            .canonical(&json!(1u64 << 40))
            .unwrap_err()
            .contains("range"));
        let burst = field(TENANT_FIELDS, "burst_multiplier").unwrap();
        assert_eq!(burst.canonical(&json!(1.1)), Ok(json!(1.1)));
        assert_eq!(burst.canonical(&json!(2)), Ok(json!(2.0)));
        // What row_to_json gives back for real 1.1 equals the file's 1.1.
        assert_eq!(burst.canonical(&json!(1.1f32 as f64)), Ok(json!(1.1)));
        let schema = field(TENANT_FIELDS, "schema_name").unwrap();
        assert!(schema.canonical(&json!("x".repeat(64))).is_err());
        let shared = field(TENANT_FIELDS, "shared_schemas").unwrap();
        assert!(shared.canonical(&json!(["a", 1])).is_err());
        assert_eq!(shared.canonical(&json!(["a"])), Ok(json!(["a"])));
        // A real the catalog can hold and JSON cannot (burst_multiplier >= 1
        // lets NaN and Infinity through): its text is its canonical form.
        assert_eq!(burst.canonical(&json!("NaN")), Ok(json!("NaN")));
        assert_eq!(burst.canonical(&json!("Infinity")), Ok(json!("Infinity")));
        assert_eq!(burst.canonical(&non_finite(f64::NAN)), Ok(json!("NaN")));
        assert!(burst.canonical(&json!("nan")).is_err());
        assert!(max.canonical(&json!("NaN")).is_err());
        let ro = field(TENANT_FIELDS, "read_only").unwrap();
        assert!(ro.canonical(&json!("yes")).is_err());
    }
}
