//! What `apply` prints (the diff as text or JSON; never a secret) and the
//! document `export` writes.

use super::diff::{Change, Diff, SecretChange};
use super::fields::{describe, DEFAULTS_FIELDS, TENANT_FIELDS};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write;

fn secret_word(s: SecretChange) -> &'static str {
    match s {
        SecretChange::Set => "set",
        SecretChange::Replaced => "replaced",
    }
}

/// `null`: how a NULL reads (a tenant's NULL is "the default"; the
/// defaults row's, "no row").
fn change_lines(out: &mut String, changes: &[Change], null: &str) {
    let show = |v: &Value| {
        if v.is_null() {
            null.to_string()
        } else {
            describe(v)
        }
    };
    for c in changes {
        let _ = writeln!(out, "    {}: {} -> {}", c.field, show(&c.old), show(&c.new));
    }
}

/// The diff, one block per tenant created, changed or dropped (unchanged
/// ones are only counted in the summary).
pub fn text_changes(d: &Diff, defaults: &[Change]) -> String {
    let mut out = String::new();
    if !defaults.is_empty() {
        out.push_str("~ defaults\n");
        change_lines(&mut out, defaults, "(no row)");
    }
    for t in &d.created {
        let _ = writeln!(out, "+ tenant \"{}\"", t.id);
        for f in TENANT_FIELDS {
            if let Some(v) = t.values.get(f.name) {
                let _ = writeln!(out, "    {}: {}", f.name, v);
            }
        }
        if t.secret.is_some() {
            out.push_str("    password: (secret set)\n");
        }
    }
    for c in &d.changed {
        let _ = writeln!(out, "~ tenant \"{}\"", c.id);
        change_lines(&mut out, &c.changes, "(default)");
        if let Some(s) = c.secret {
            let _ = writeln!(out, "    password: (secret {})", secret_word(s));
        }
    }
    for id in &d.dropped {
        let _ = writeln!(out, "- tenant \"{id}\"");
    }
    out
}

/// `N created, N changed, N dropped, N unchanged` (and what else).
pub fn summary(d: &Diff, defaults: &[Change], dry_run: bool) -> String {
    let mut s = format!(
        "{} created, {} changed, {} dropped, {} unchanged",
        d.created.len(),
        d.changed.len(),
        d.dropped.len(),
        d.unchanged.len()
    );
    if !defaults.is_empty() {
        s.push_str(", defaults changed");
    }
    if dry_run {
        s.push_str(" (dry run: nothing applied)");
    }
    s
}

fn changes_json(changes: &[Change]) -> Value {
    Value::Array(
        changes
            .iter()
            .map(|c| json!({"field": c.field, "old": c.old, "new": c.new}))
            .collect(),
    )
}

/// The whole report as one JSON document.
pub fn json(d: &Diff, defaults: &[Change], dry_run: bool) -> String {
    let created: Vec<Value> = d
        .created
        .iter()
        .map(|t| {
            let fields: Map<String, Value> = t
                .values
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            json!({"id": t.id, "fields": fields, "password": t.secret.as_ref().map(|_| "set")})
        })
        .collect();
    let changed: Vec<Value> = d
        .changed
        .iter()
        .map(|c| {
            json!({"id": c.id, "changes": changes_json(&c.changes),
                   "password": c.secret.map(secret_word)})
        })
        .collect();
    json!({
        "dry_run": dry_run,
        "applied": !dry_run,
        "created": created,
        "changed": changed,
        "dropped": d.dropped,
        "unchanged": d.unchanged,
        "defaults": changes_json(defaults),
        "summary": summary(d, defaults, dry_run),
    })
    .to_string()
}

fn toml_value(v: &Value) -> String {
    match toml::Value::try_from(v) {
        Ok(t) => t.to_string(),
        Err(_) => v.to_string(),
    }
}

/// A tenants file (TOML) holding the catalog: the defaults row (every
/// field), then one `[[tenants]]` block per tenant with the fields not at
/// their omitted value. Secrets are not exported: a comment lists the
/// tenants that have one.
pub fn export_toml(
    defaults: Option<&BTreeMap<&'static str, Value>>,
    tenants: &[(String, BTreeMap<&'static str, Value>)],
    with_secret: &[&str],
) -> String {
    let mut out = String::from(
        "# Tenants exported by `tenant-router tenants export`; apply with\n\
         # `tenant-router tenants apply FILE` (the book's \"Tenants declared in a file\" page,\n\
         # docs/src/operations/tenants-file.md).\n",
    );
    if !with_secret.is_empty() {
        let _ = writeln!(
            out,
            "# Secrets are never exported. These tenants have one (add password_file or\n\
             # password_env to manage it; without, apply leaves it as it is): {}",
            with_secret.join(", ")
        );
    }
    if let Some(d) = defaults {
        out.push_str("\n[defaults]\n");
        for f in DEFAULTS_FIELDS {
            if let Some(v) = d.get(f.name).filter(|v| !v.is_null()) {
                let _ = writeln!(out, "{} = {}", f.name, toml_value(v));
            }
        }
    }
    for (id, values) in tenants {
        let _ = writeln!(
            out,
            "\n[[tenants]]\nid = {}",
            toml_value(&Value::from(id.as_str()))
        );
        for f in TENANT_FIELDS {
            if let Some(v) = values.get(f.name) {
                let _ = writeln!(out, "{} = {}", f.name, toml_value(v));
            }
        }
    }
    out
}

/// The same document as JSON.
pub fn export_json(
    defaults: Option<&BTreeMap<&'static str, Value>>,
    tenants: &[(String, BTreeMap<&'static str, Value>)],
) -> String {
    let mut doc = Map::new();
    if let Some(d) = defaults {
        let m: Map<String, Value> = d
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        doc.insert("defaults".into(), Value::Object(m));
    }
    let list: Vec<Value> = tenants
        .iter()
        .map(|(id, values)| {
            let mut m = Map::new();
            m.insert("id".into(), Value::from(id.as_str()));
            for (k, v) in values {
                m.insert(k.to_string(), v.clone());
            }
            Value::Object(m)
        })
        .collect();
    doc.insert("tenants".into(), Value::Array(list));
    let mut s = serde_json::to_string_pretty(&Value::Object(doc)).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::super::spec::parse;
    use super::*;

    #[test]
    fn exported_toml_reads_back_as_the_same_values() {
        let mut acme = BTreeMap::new();
        acme.insert("name", json!("Acme \"Corp\""));
        acme.insert("burst_multiplier", json!(1.5));
        acme.insert("login_roles", json!(["a", "b"]));
        acme.insert("max_result_bytes", json!(1i64 << 40));
        let mut defaults = BTreeMap::new();
        defaults.insert("max_connections", json!(50));
        let tenants = vec![("acme".to_string(), acme.clone())];
        for (text, is_json) in [
            (export_toml(Some(&defaults), &tenants, &["acme"]), false),
            (export_json(Some(&defaults), &tenants), true),
        ] {
            let back = parse(&text, is_json, &|_| None, None).expect(&text);
            assert_eq!(back.defaults.as_ref(), Some(&defaults));
            assert_eq!(back.tenants.len(), 1);
            assert_eq!(back.tenants[0].values, acme);
        }
    }
}
