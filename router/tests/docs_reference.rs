//! The book's reference pages that must not drift from the code (no
//! cluster needed):
//! - docs/src/reference/configuration.md against the configuration structs
//!   (`RawConfig` and its sections, `deny_unknown_fields`: the parser's
//!   own list of expected keys) and the sample `router/tenant-router.toml`:
//!   a field missing from any of the three fails, and so does a heading
//!   without its Default / Reload / Environment lines, or an environment
//!   variable the router does not read (or reads but the page omits), or a
//!   Reload line that disagrees with `RestartOnly` (what a reload keeps);
//! - docs/src/operations/monitoring/: the Grafana dashboard parses and
//!   every metric it queries is a family of `/metrics`
//!   (`metrics::families::ALL`); the Prometheus scrape config scrapes the
//!   admin API's /metrics.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tenant_router::config::RawConfig;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The keys the parser expects in `section` ("" for the top level), from
/// the error it gives for an unknown key (every table is
/// `deny_unknown_fields`).
fn expected_keys(section: &str) -> BTreeSet<String> {
    let doc = if section.is_empty() {
        "zz_not_a_field = 1\n".to_string()
    } else {
        format!("[{section}]\nzz_not_a_field = 1\n")
    };
    let err = match RawConfig::from_toml(&doc, Path::new("probe.toml")) {
        Ok(_) => panic!("[{section}] accepted an unknown key"),
        Err(e) => e.to_string(),
    };
    // "unknown field `zz_not_a_field`, expected one of `a`, `b`, ..."
    let list = err
        .split_once("zz_not_a_field`, expected")
        .map(|(_, l)| l.lines().next().unwrap_or(""))
        .unwrap_or_else(|| panic!("no expected-keys list in {err}"));
    let keys: BTreeSet<String> = list
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(!keys.is_empty(), "no keys parsed from {err}");
    keys
}

/// Every field of the structs, as `section.key` (`upstreams.<name>.key`).
fn struct_fields() -> BTreeSet<String> {
    let tables = [
        "identify",
        "auth",
        "catalog",
        "pool",
        "metrics",
        "fleet",
        "tls",
        "upstreams",
    ];
    let mut out = BTreeSet::new();
    for k in expected_keys("") {
        if !tables.contains(&k.as_str()) {
            out.insert(k);
        }
    }
    for t in tables.iter().filter(|t| **t != "upstreams") {
        for k in expected_keys(t) {
            if !(*t == "auth" && k == "jwt") {
                out.insert(format!("{t}.{k}"));
            }
        }
    }
    for k in expected_keys("auth.jwt") {
        out.insert(format!("auth.jwt.{k}"));
    }
    for k in expected_keys("upstreams.b") {
        out.insert(format!("upstreams.<name>.{k}"));
    }
    out
}

/// Every key the sample shows, set or commented out (`# key = value`
/// under `[section]` or `# [section]`).
fn sample_fields(text: &str) -> BTreeSet<String> {
    let mut section = String::new();
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let l = line.strip_prefix("# ").unwrap_or(line);
        if let Some(s) = l
            .strip_prefix('[')
            .and_then(|s| s.trim_end().strip_suffix(']'))
        {
            section = if s.starts_with("upstreams.") {
                "upstreams.<name>".to_string()
            } else {
                s.to_string()
            };
            continue;
        }
        let Some((key, _)) = l.split_once(" = ") else {
            continue;
        };
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            continue;
        }
        out.insert(if section.is_empty() {
            key.to_string()
        } else {
            format!("{section}.{key}")
        });
    }
    out
}

/// The page's `### `field`` headings, each checked for its three lines.
fn doc_fields(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = line.strip_prefix("### `").and_then(|s| s.strip_suffix('`')) else {
            continue;
        };
        let body: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|l| !l.starts_with('#'))
            .copied()
            .collect();
        for want in ["- Default: ", "- Reload: ", "- Environment: "] {
            assert!(
                body.iter()
                    .any(|l| l.starts_with(want) && l.len() > want.len()),
                "configuration.md: `{name}` has no \"{want}\" line"
            );
        }
        assert!(
            out.insert(name.to_string()),
            "configuration.md: `{name}` twice"
        );
    }
    out
}

/// The page's fields whose Reload line says `restart`.
fn doc_restart_fields(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut current = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("### `").and_then(|s| s.strip_suffix('`')) {
            current = Some(name.to_string());
        } else if line.starts_with('#') {
            current = None;
        } else if let (Some(name), Some(v)) = (&current, line.strip_prefix("- Reload: ")) {
            if v.starts_with("restart") {
                out.insert(name.clone());
            }
        }
    }
    out
}

/// The fields `RestartOnly::of` copies (router/src/config/settings.rs):
/// every `raw.<path>` it reads, a section standing for all its fields.
fn restart_only_fields(fields: &BTreeSet<String>) -> BTreeSet<String> {
    let src = read("router/src/config/settings.rs");
    let start = src
        .find("fn of(raw: &RawConfig) -> RestartOnly")
        .expect("RestartOnly::of in settings.rs");
    let body = &src[start..];
    let body = &body[..body.find("\n    }\n").expect("end of RestartOnly::of")];
    let mut out = BTreeSet::new();
    for part in body.split("raw.").skip(1) {
        let path: String = part
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '.')
            .collect();
        let path = path.trim_end_matches('.').trim_end_matches(".clone");
        if fields.contains(path) {
            out.insert(path.to_string());
        } else {
            let section: Vec<&String> = fields
                .iter()
                .filter(|f| f.starts_with(&format!("{path}.")))
                .collect();
            assert!(
                !section.is_empty(),
                "RestartOnly::of reads raw.{path}, no field"
            );
            out.extend(section.into_iter().cloned());
        }
    }
    out
}

#[test]
fn configuration_reference_says_which_fields_need_a_restart() {
    let fields = struct_fields();
    let code = restart_only_fields(&fields);
    assert!(
        code.contains("listen") && code.contains("catalog.url"),
        "{code:?}"
    );
    let doc = doc_restart_fields(&read("docs/src/reference/configuration.md"));
    assert_eq!(
        diff(&code, &doc),
        Vec::<String>::new(),
        "restart-only fields (RestartOnly) configuration.md says SIGHUP applies"
    );
    assert_eq!(
        diff(&doc, &code),
        Vec::<String>::new(),
        "fields configuration.md says need a restart that a reload applies"
    );
}

fn diff(a: &BTreeSet<String>, b: &BTreeSet<String>) -> Vec<String> {
    a.difference(b).cloned().collect()
}

#[test]
fn configuration_reference_lists_every_field() {
    let fields = struct_fields();
    // A sanity floor: the probe found the sections' keys, not just a few.
    assert!(
        fields.len() > 60,
        "only {} fields: {fields:?}",
        fields.len()
    );
    for f in [
        "listen",
        "pool.size",
        "auth.jwt.issuer",
        "upstreams.<name>.address",
    ] {
        assert!(fields.contains(f), "{f} missing from the struct probe");
    }
    let sample = sample_fields(&read("router/tenant-router.toml"));
    let doc = doc_fields(&read("docs/src/reference/configuration.md"));
    assert_eq!(
        diff(&fields, &sample),
        Vec::<String>::new(),
        "fields missing from router/tenant-router.toml"
    );
    assert_eq!(
        diff(&sample, &fields),
        Vec::<String>::new(),
        "keys in router/tenant-router.toml that are no field"
    );
    assert_eq!(
        diff(&fields, &doc),
        Vec::<String>::new(),
        "fields missing from docs/src/reference/configuration.md"
    );
    assert_eq!(
        diff(&doc, &fields),
        Vec::<String>::new(),
        "docs/src/reference/configuration.md documents fields that do not exist"
    );
}

/// `TENANT_ROUTER_*` names in `text`.
fn env_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("TENANT_ROUTER_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .unwrap_or(tail.len());
        let name = tail[..end].trim_end_matches('_');
        // `TENANT_ROUTER_*` names the family, not a variable.
        if name.len() > "TENANT_ROUTER".len() {
            out.insert(name.to_string());
        }
        rest = &tail[end..];
    }
    out
}

fn rust_sources(dir: &Path, out: &mut String) {
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push_str(&std::fs::read_to_string(&p).expect("read"));
        }
    }
}

#[test]
fn configuration_reference_names_every_environment_variable() {
    let mut code = String::new();
    rust_sources(&repo().join("router/src"), &mut code);
    // Only the quoted names the code reads (comments may mention others).
    let mut read_by_code = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("\"TENANT_ROUTER_") {
        let tail = &rest[at + 1..];
        let end = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .unwrap_or(tail.len());
        if tail[end..].starts_with('"') {
            read_by_code.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    assert!(
        read_by_code.contains("TENANT_ROUTER_CATALOG_URL"),
        "{read_by_code:?}"
    );
    let doc = env_names(&read("docs/src/reference/configuration.md"));
    assert_eq!(
        diff(&read_by_code, &doc),
        Vec::<String>::new(),
        "environment variables the router reads that configuration.md omits"
    );
    assert_eq!(
        diff(&doc, &read_by_code),
        Vec::<String>::new(),
        "environment variables configuration.md names that the router never reads"
    );
}

/// Every `tenant_router_*` name in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("tenant_router_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match x {
                    serde_json::Value::String(s)
                        if k == "expr" || (k == "query" && s.contains("tenant_router_")) =>
                    {
                        out.push(s.clone())
                    }
                    _ => exprs(x, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| exprs(x, out)),
        _ => {}
    }
}

#[test]
fn grafana_dashboard_queries_only_metrics_the_router_exposes() {
    use tenant_router::metrics::families::{Kind, ALL};
    let text = read("docs/src/operations/monitoring/grafana-dashboard.json");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON parses");
    assert!(
        dash["title"].as_str().is_some_and(|t| !t.is_empty()),
        "no title"
    );
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 6, "only {} panels", panels.len());
    let mut all = Vec::new();
    exprs(&dash, &mut all);
    assert!(
        all.len() >= panels.len(),
        "{} queries for {} panels",
        all.len(),
        panels.len()
    );
    let mut used = BTreeSet::new();
    for e in &all {
        let names = metric_names(e);
        assert!(
            !names.is_empty(),
            "query names no tenant_router metric: {e}"
        );
        for n in names {
            let known = ALL.iter().any(|f| match f.kind {
                Kind::Histogram => ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| n == format!("{}{s}", f.name)),
                Kind::Counter | Kind::Gauge => n == f.name,
            });
            assert!(
                known,
                "the dashboard queries {n}, which is no family of /metrics ({e})"
            );
            used.insert(n);
        }
    }
    // The families an operator looks at first are on it.
    for want in [
        "tenant_router_client_connections",
        "tenant_router_all_tenants_statements_total",
        "tenant_router_pool_waiting_clients",
        "tenant_router_catalog_up",
    ] {
        assert!(used.contains(want), "the dashboard does not chart {want}");
    }
}

#[test]
fn prometheus_scrape_config_targets_the_admin_metrics_endpoint() {
    let text = read("docs/src/operations/monitoring/prometheus.yml");
    // The scrape config is YAML; its shape is checked line by line (and by
    // `promtool check config` in scripts/docs check when promtool is there).
    assert!(text.contains("scrape_configs:"), "{text}");
    assert!(text.contains("metrics_path: /metrics"), "{text}");
    assert!(text.contains("job_name: tenant-router"), "{text}");
    let sample = read("router/tenant-router.toml");
    let admin = sample
        .lines()
        .find_map(|l| l.strip_prefix("admin_listen = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("admin_listen in the sample");
    assert!(
        text.contains(&format!("'{admin}'")),
        "the scrape config does not target the sample's admin_listen {admin}"
    );
}
