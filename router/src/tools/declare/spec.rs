//! Reading a tenants file (TOML, or JSON when the name ends in `.json`)
//! into what it declares. Everything is checked here, before any
//! connection: unknown keys, values of the wrong kind, duplicate ids, inline
//! secrets, unreadable secret files and unset variables are errors naming
//! the tenant and the field.
//!
//! ```toml
//! [defaults]                      # optional: tenant.set_defaults(...)
//! max_connections = 50
//!
//! [[tenants]]
//! id = "acme"
//! name = "Acme Corp"
//! max_connections = 20
//! password_env = "ACME_PASSWORD"  # or password_file = "/run/secrets/acme"
//! ```

use super::fields::{field, non_finite, Field, DEFAULTS_FIELDS, TENANT_FIELDS};
use super::DeclareError;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// A tenant's secret, read from where the file points. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// One `[[tenants]]` block: the fields it sets, in canonical form.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantSpec {
    pub id: String,
    pub values: BTreeMap<&'static str, Value>,
    /// None: the file does not manage this tenant's secret.
    pub secret: Option<Secret>,
}

impl TenantSpec {
    /// The value the file declares for `f` (its omitted value if unset).
    pub fn value(&self, f: &Field) -> Value {
        self.values
            .get(f.name)
            .cloned()
            .unwrap_or_else(|| f.omitted_value(&self.id))
    }
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Declared {
    /// `[defaults]`: the values set (the others take the built-ins); None:
    /// the file leaves the defaults row as it is.
    pub defaults: Option<BTreeMap<&'static str, Value>>,
    pub tenants: Vec<TenantSpec>,
}

/// Keys that would hold a secret inline.
const INLINE_SECRETS: &[&str] = &[
    "password",
    "secret",
    "verifier",
    "auth_secret",
    "password_verifier",
];

const TENANT_ID: &str = "^[a-z0-9][a-z0-9_-]{0,62}$";

fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

/// Read and check the file at `path`.
pub fn read(path: &Path) -> Result<Declared, DeclareError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| DeclareError::Read(format!("cannot read {}: {e}", path.display())))?;
    let json = path.extension().is_some_and(|e| e == "json");
    parse(&text, json, &|name| std::env::var(name).ok(), path.parent())
}

/// Parse a document (`json`: JSON, else TOML). `env` reads a variable;
/// relative `password_file` paths are taken from `base`.
pub fn parse(
    text: &str,
    json: bool,
    env: &dyn Fn(&str) -> Option<String>,
    base: Option<&Path>,
) -> Result<Declared, DeclareError> {
    let doc: Value = if json {
        serde_json::from_str::<Strict>(text)
            .map(|s| s.0)
            .map_err(|e| DeclareError::Syntax(e.to_string()))?
    } else {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| DeclareError::Syntax(toml_error(text, &e)))?;
        toml_json(toml::Value::Table(table))
    };
    let Value::Object(top) = doc else {
        return Err(DeclareError::Syntax(
            "the document is not a table".to_string(),
        ));
    };
    let mut out = Declared::default();
    let mut ids = std::collections::HashSet::new();
    for (key, value) in &top {
        match key.as_str() {
            "defaults" => out.defaults = Some(defaults(value)?),
            "tenants" => {
                let Some(list) = value.as_array() else {
                    return Err(DeclareError::Syntax(
                        "`tenants` is not an array of tables ([[tenants]])".to_string(),
                    ));
                };
                for (i, t) in list.iter().enumerate() {
                    let spec = tenant(i, t, env, base)?;
                    if !ids.insert(spec.id.clone()) {
                        return Err(DeclareError::Invalid {
                            tenant: spec.id,
                            field: "id".to_string(),
                            problem: "declared twice".to_string(),
                        });
                    }
                    out.tenants.push(spec);
                }
            }
            other => {
                return Err(DeclareError::Syntax(format!(
                    "unknown top-level key `{other}` (expected `defaults` and `tenants`)"
                )))
            }
        }
    }
    Ok(out)
}

/// A TOML error as its message and position, without the source line the
/// toml crate quotes: that line may hold what must never be printed (an
/// inline `password = "...` with a missing quote).
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    match e.span() {
        Some(span) => {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let start = before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let column = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
            format!("TOML parse error at line {line}, column {column}: {message}")
        }
        None => format!("TOML parse error: {message}"),
    }
}

/// A TOML document as JSON values. A float that is not finite (`nan`,
/// `inf`), which JSON cannot hold (serde_json would make it null, that is
/// "left out"), becomes a marker only a real field accepts
/// ([`fields::non_finite`]).
fn toml_json(value: toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(n) => Value::from(n),
        toml::Value::Float(x) => serde_json::Number::from_f64(x)
            .map(Value::Number)
            .unwrap_or_else(|| non_finite(x)),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => serde_json::json!({ "datetime": d.to_string() }),
        toml::Value::Array(items) => Value::Array(items.into_iter().map(toml_json).collect()),
        toml::Value::Table(t) => {
            Value::Object(t.into_iter().map(|(k, v)| (k, toml_json(v))).collect())
        }
    }
}

/// A JSON document that refuses a key given twice in one object
/// (serde_json keeps the last one: `{"id": "a", ..., "id": "b"}` would
/// declare `b` to a reader who saw `a`; TOML refuses it too).
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::from(n))
    }
    fn visit_f64<E>(self, x: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "key `{key}` given twice in one object"
                )));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

fn defaults(value: &Value) -> Result<BTreeMap<&'static str, Value>, DeclareError> {
    let invalid = |field: &str, problem: String| DeclareError::Invalid {
        tenant: "[defaults]".to_string(),
        field: field.to_string(),
        problem,
    };
    let Some(table) = value.as_object() else {
        return Err(invalid("defaults", "is not a table".to_string()));
    };
    let mut out = BTreeMap::new();
    for (key, v) in table {
        let Some(f) = field(DEFAULTS_FIELDS, key) else {
            return Err(invalid(key, unknown(DEFAULTS_FIELDS, &[])));
        };
        let c = f.canonical(v).map_err(|p| invalid(key, p))?;
        if !c.is_null() {
            out.insert(f.name, c);
        }
    }
    Ok(out)
}

fn unknown(fields: &[Field], extra: &[&str]) -> String {
    let known: Vec<&str> = fields
        .iter()
        .map(|f| f.name)
        .chain(extra.iter().copied())
        .collect();
    format!("unknown field (known: {})", known.join(", "))
}

fn tenant(
    i: usize,
    value: &Value,
    env: &dyn Fn(&str) -> Option<String>,
    base: Option<&Path>,
) -> Result<TenantSpec, DeclareError> {
    let position = format!("tenants[{i}]");
    let Some(table) = value.as_object() else {
        return Err(DeclareError::Invalid {
            tenant: position,
            field: "-".to_string(),
            problem: "is not a table".to_string(),
        });
    };
    let id = match table.get("id") {
        Some(Value::String(s)) if valid_id(s) => s.clone(),
        Some(other) => {
            return Err(DeclareError::Invalid {
                tenant: position,
                field: "id".to_string(),
                problem: format!(
                    "{} is not a tenant id (1-63 characters matching {TENANT_ID})",
                    other
                ),
            })
        }
        None => {
            return Err(DeclareError::Invalid {
                tenant: position,
                field: "id".to_string(),
                problem: "missing".to_string(),
            })
        }
    };
    let invalid = |field: &str, problem: String| DeclareError::Invalid {
        tenant: id.clone(),
        field: field.to_string(),
        problem,
    };
    let mut spec = TenantSpec {
        id: id.clone(),
        values: BTreeMap::new(),
        secret: None,
    };
    let refs = ["password_file", "password_env"];
    for (key, v) in table {
        if key == "id" || refs.contains(&key.as_str()) {
            continue;
        }
        if INLINE_SECRETS.contains(&key.as_str()) {
            return Err(invalid(
                key,
                "secrets are never written inline: use password_file = \"<path>\" or \
                 password_env = \"<VARIABLE>\""
                    .to_string(),
            ));
        }
        let Some(f) = field(TENANT_FIELDS, key) else {
            return Err(invalid(key, unknown(TENANT_FIELDS, &refs)));
        };
        let c = f.canonical(v).map_err(|p| invalid(key, p))?;
        if !c.is_null() {
            spec.values.insert(f.name, c);
        }
    }
    let reference = |key: &str| -> Result<Option<String>, DeclareError> {
        match table.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(_) => Err(invalid(key, "expected a non-empty string".to_string())),
        }
    };
    spec.secret = match (reference("password_file")?, reference("password_env")?) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "password_env",
                "set one of password_file and password_env, not both".to_string(),
            ))
        }
        (Some(file), None) => {
            let path = match base {
                Some(b) if Path::new(&file).is_relative() => b.join(&file),
                _ => Path::new(&file).to_path_buf(),
            };
            let text = read_secret_file(&path).map_err(|e| {
                invalid(
                    "password_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            Some(secret(
                text.trim_end_matches(['\n', '\r']),
                "password_file",
                &invalid,
            )?)
        }
        // Not echoed unless it is a variable's name: a secret written here
        // by mistake must not reach the error message (and the CI log).
        (None, Some(var)) if !env_name(&var) => {
            return Err(invalid(
                "password_env",
                "expected the name of an environment variable (letters, digits and _, \
                 not starting with a digit), not the secret itself"
                    .to_string(),
            ))
        }
        (None, Some(var)) => match env(&var) {
            Some(v) => Some(secret(&v, "password_env", &invalid)?),
            None => {
                return Err(invalid(
                    "password_env",
                    format!("environment variable {var} is not set"),
                ))
            }
        },
        (None, None) => None,
    };
    Ok(spec)
}

/// The largest `password_file` read (a password or a verifier is far
/// smaller; `/dev/zero` or a log file named by mistake would be read whole).
pub const MAX_SECRET_FILE: u64 = 64 * 1024;

fn read_secret_file(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SECRET_FILE + 1).read_to_end(&mut bytes))
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(format!(
            "larger than {} KiB, not a secret",
            MAX_SECRET_FILE / 1024
        ));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())
}

fn env_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && !b[0].is_ascii_digit()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

fn secret(
    s: &str,
    field: &str,
    invalid: &dyn Fn(&str, String) -> DeclareError,
) -> Result<Secret, DeclareError> {
    if s.is_empty() {
        return Err(invalid(field, "the secret is empty".to_string()));
    }
    Ok(Secret(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn toml(text: &str) -> Result<Declared, DeclareError> {
        parse(
            text,
            false,
            &|v| (v == "ACME_PW").then(|| "s3cret".to_string()),
            None,
        )
    }

    fn invalid(r: Result<Declared, DeclareError>) -> (String, String) {
        match r {
            Err(DeclareError::Invalid { tenant, field, .. }) => (tenant, field),
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn a_file_declares_tenants_defaults_and_secret_references() {
        let d = toml(
            "[defaults]\nmax_connections = 50\n\
             [[tenants]]\nid = \"acme\"\nname = \"Acme\"\nburst_multiplier = 2\npassword_env = \"ACME_PW\"\n\
             [[tenants]]\nid = \"beta\"\n",
        )
        .unwrap();
        assert_eq!(
            d.defaults.as_ref().unwrap().get("max_connections"),
            Some(&json!(50))
        );
        assert_eq!(d.tenants.len(), 2);
        assert_eq!(
            d.tenants[0].values.get("burst_multiplier"),
            Some(&json!(2.0))
        );
        assert_eq!(d.tenants[0].secret, Some(Secret("s3cret".into())));
        assert_eq!(d.tenants[1].secret, None);
        assert!(!format!("{d:?}").contains("s3cret"));
    }

    #[test]
    fn unknown_fields_name_the_tenant_and_the_field() {
        let r = toml("[[tenants]]\nid = \"acme\"\nmax_conections = 5\n");
        assert_eq!(invalid(r), ("acme".into(), "max_conections".into()));
        let r = toml("[defaults]\nisolation = \"rls\"\n");
        assert_eq!(invalid(r), ("[defaults]".into(), "isolation".into()));
        assert!(matches!(toml("[tenant]\n"), Err(DeclareError::Syntax(_))));
    }

    #[test]
    fn inline_secrets_are_refused() {
        let r = toml("[[tenants]]\nid = \"acme\"\npassword = \"hunter2\"\n");
        assert_eq!(invalid(r), ("acme".into(), "password".into()));
        let r = toml("[[tenants]]\nid = \"acme\"\npassword_env = \"UNSET_VAR\"\n");
        assert_eq!(invalid(r), ("acme".into(), "password_env".into()));
        let r = toml(
            "[[tenants]]\nid = \"acme\"\npassword_env = \"ACME_PW\"\npassword_file = \"/x\"\n",
        );
        assert_eq!(invalid(r).0, "acme");
    }

    #[test]
    fn bad_values_and_duplicates_are_refused() {
        let r = toml("[[tenants]]\nid = \"acme\"\nmax_connections = \"ten\"\n");
        assert_eq!(invalid(r), ("acme".into(), "max_connections".into()));
        let r = toml("[[tenants]]\nid = \"acme\"\n[[tenants]]\nid = \"acme\"\n");
        assert_eq!(invalid(r), ("acme".into(), "id".into()));
        let r = toml("[[tenants]]\nid = \"Bad Id\"\n");
        assert_eq!(invalid(r), ("tenants[0]".into(), "id".into()));
        let r = toml("[[tenants]]\nname = \"x\"\n");
        assert_eq!(invalid(r), ("tenants[0]".into(), "id".into()));
    }

    #[test]
    fn json_files_read_like_toml_and_null_is_omitted() {
        let d = parse(
            r#"{"tenants": [{"id": "acme", "max_connections": null, "read_only": true}]}"#,
            true,
            &|_| None,
            None,
        )
        .unwrap();
        assert_eq!(d.tenants[0].values.len(), 1);
        assert_eq!(d.defaults, None);
    }

    #[test]
    fn many_tenants_are_read_in_linear_time() {
        // The duplicate check searched the tenants read so far: 16 s for
        // 40,000 tenants (debug build), four times that for these.
        let n = 80_000;
        let text: String = (0..n)
            .map(|i| format!("[[tenants]]\nid = \"t{i}\"\n"))
            .collect();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(toml(&text).map(|d| d.tenants.len()).ok());
        });
        assert_eq!(
            rx.recv_timeout(std::time::Duration::from_secs(40)),
            Ok(Some(n))
        );
    }

    #[test]
    fn a_toml_syntax_error_names_the_place_and_never_quotes_the_line() {
        // An inline secret with a missing quote: the toml crate's message
        // quotes the line; ours gives its number only.
        let e = toml("[[tenants]]\nid = \"acme\"\npassword = \"hunter2\n")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("line 3, column 20: invalid basic string"), "{e}");
        let e = toml("[[tenants]]\nid = \"acme\"\npassword = \"hunter2\"\npassword = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2") && e.contains("line 4"), "{e}");
        // Control: a valid file parses.
        assert!(toml("[[tenants]]\nid = \"acme\"\n").is_ok());
    }

    #[test]
    fn toml_nan_and_inf_are_reals_not_left_out() {
        // serde_json made them null, that is "left out" (the default).
        let d = toml("[[tenants]]\nid = \"acme\"\nburst_multiplier = nan\n[defaults]\nburst_multiplier = inf\n")
            .unwrap();
        assert_eq!(
            d.tenants[0].values.get("burst_multiplier"),
            Some(&json!("NaN"))
        );
        assert_eq!(
            d.defaults.as_ref().unwrap().get("burst_multiplier"),
            Some(&json!("Infinity"))
        );
        let r = toml("[[tenants]]\nid = \"acme\"\nmax_connections = inf\n");
        assert_eq!(invalid(r), ("acme".into(), "max_connections".into()));
        let e = toml("[[tenants]]\nid = \"acme\"\nname = -inf\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected a string, got -Infinity"), "{e}");
        // Control: a finite real is a number.
        let d = toml("[[tenants]]\nid = \"acme\"\nburst_multiplier = 2.5\n").unwrap();
        assert_eq!(
            d.tenants[0].values.get("burst_multiplier"),
            Some(&json!(2.5))
        );
    }

    #[test]
    fn a_json_key_given_twice_is_refused() {
        let json = |t: &str| parse(t, true, &|_| None, None);
        for doc in [
            r#"{"tenants": [{"id": "acme", "read_only": true, "read_only": false}]}"#,
            r#"{"tenants": [{"id": "acme", "id": "other"}]}"#,
            r#"{"tenants": [], "tenants": [{"id": "acme"}]}"#,
        ] {
            match json(doc) {
                Err(DeclareError::Syntax(m)) => assert!(m.contains("given twice"), "{m}"),
                other => panic!("{doc}: {other:?}"),
            }
        }
        // Control: the same keys once each.
        let d = json(r#"{"tenants": [{"id": "acme", "read_only": true}]}"#).unwrap();
        assert_eq!(d.tenants[0].values.get("read_only"), Some(&json!(true)));
    }

    #[test]
    fn password_env_that_is_no_variable_name_is_not_echoed() {
        let e =
            toml("[[tenants]]\nid = \"acme\"\npassword_env = \"correct horse!\"\n").unwrap_err();
        assert!(!e.to_string().contains("correct horse"), "{e}");
        assert_eq!(invalid(Err(e)), ("acme".into(), "password_env".into()));
        // Control: a variable's name is read.
        let d = toml("[[tenants]]\nid = \"acme\"\npassword_env = \"ACME_PW\"\n").unwrap();
        assert_eq!(d.tenants[0].secret, Some(Secret("s3cret".into())));
    }

    #[test]
    fn a_password_file_is_read_up_to_a_bound() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_SECRET_FILE + 1)
            .unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, "pw\n").unwrap();
        let file = |name: &str| {
            parse(
                &format!("[[tenants]]\nid = \"acme\"\npassword_file = \"{name}\"\n"),
                false,
                &|_| None,
                Some(dir.path()),
            )
        };
        match file("big") {
            Err(e @ DeclareError::Invalid { .. }) => {
                assert!(e.to_string().contains("larger than 64 KiB"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            file("small").unwrap().tenants[0].secret,
            Some(Secret("pw".into()))
        );
    }
}
