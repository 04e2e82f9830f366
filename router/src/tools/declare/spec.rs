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

use super::fields::{field, Field, DEFAULTS_FIELDS, TENANT_FIELDS};
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
        serde_json::from_str(text).map_err(|e| DeclareError::Syntax(e.to_string()))?
    } else {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| DeclareError::Syntax(e.to_string()))?;
        serde_json::to_value(table).map_err(|e| DeclareError::Syntax(e.to_string()))?
    };
    let Value::Object(top) = doc else {
        return Err(DeclareError::Syntax(
            "the document is not a table".to_string(),
        ));
    };
    let mut out = Declared::default();
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
                    if out.tenants.iter().any(|o| o.id == spec.id) {
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
            let text = std::fs::read_to_string(&path).map_err(|e| {
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
}
