//! The SQL reference (docs/src/reference/sql.md) against the extension on
//! the real cluster: every function that belongs to pg_tenant (pg_depend
//! 'e' on the extension, in schema `tenant` or any other) has a heading,
//! every function a heading names exists, every signature line is the one
//! `pg_get_function_arguments` / `pg_get_function_result` give, and every
//! section says which SQLSTATEs it raises: at least every
//! `ERRCODE = 'xxxxx'` of a PL/pgSQL function's own body (the codes of the
//! functions it calls, and of the C functions, are checked by hand).
mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet};

/// `schema.name` → its signature lines, from pg_proc.
fn extension_functions() -> BTreeMap<String, BTreeSet<String>> {
    let json = admin_sql(
        "SELECT coalesce(json_agg(json_build_array(n.nspname, p.proname, \
                pg_get_function_arguments(p.oid), pg_get_function_result(p.oid)) \
                ORDER BY n.nspname, p.proname), '[]') \
         FROM pg_proc p \
         JOIN pg_namespace n ON n.oid = p.pronamespace \
         JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid \
              AND d.deptype = 'e' \
         JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_tenant'",
    );
    let rows: Vec<(String, String, String, String)> =
        serde_json::from_str(json.trim()).expect("pg_proc rows as JSON");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (schema, name, args, result) in rows {
        let full = format!("{schema}.{name}");
        let line = format!("- `{full}({args}) → {result}`");
        out.entry(full).or_default().insert(line);
    }
    out
}

/// `schema.name` → the SQLSTATEs a PL/pgSQL function of the extension
/// raises in its own body (`ERRCODE = 'xxxxx'`).
fn plpgsql_errcodes() -> BTreeMap<String, BTreeSet<String>> {
    let json = admin_sql(
        "SELECT coalesce(json_agg(json_build_array(n.nspname || '.' || p.proname, \
                m.code)), '[]') \
         FROM pg_proc p \
         JOIN pg_namespace n ON n.oid = p.pronamespace \
         JOIN pg_language l ON l.oid = p.prolang AND l.lanname = 'plpgsql' \
         JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid \
              AND d.deptype = 'e' \
         JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_tenant' \
         CROSS JOIN LATERAL (SELECT (regexp_matches(p.prosrc, \
                'ERRCODE\\s*=\\s*''([0-9A-Z]{5})''', 'g'))[1] AS code) m",
    );
    let rows: Vec<(String, String)> =
        serde_json::from_str(json.trim()).expect("ERRCODE rows as JSON");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, code) in rows {
        out.entry(name).or_default().insert(code);
    }
    out
}

/// One documented section: the functions its heading names and its lines.
struct Section {
    names: Vec<String>,
    lines: Vec<String>,
}

fn doc_sections(text: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for line in text.lines() {
        if let Some(head) = line.strip_prefix("### `") {
            let names = format!("`{head}")
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect();
            out.push(Section {
                names,
                lines: Vec::new(),
            });
        } else if line.starts_with('#') {
            // A heading that names no function (a view, a group) ends the
            // section before it.
            out.push(Section {
                names: Vec::new(),
                lines: Vec::new(),
            });
        } else if let Some(s) = out.last_mut() {
            s.lines.push(line.to_string());
        }
    }
    out.retain(|s| !s.names.is_empty());
    out
}

#[test]
fn sql_reference_documents_every_function_of_the_extension() {
    let functions = extension_functions();
    // A floor, so an empty query result cannot pass as "nothing missing".
    assert!(
        functions.len() > 60,
        "only {} functions found",
        functions.len()
    );
    assert!(
        functions.contains_key("tenant.set_context"),
        "{functions:?}"
    );
    let text = std::fs::read_to_string(repo().join("docs/src/reference/sql.md")).expect("sql.md");
    let sections = doc_sections(&text);
    let errcodes = plpgsql_errcodes();
    // A floor: the query finds the codes (create_tenant raises 23505 for an
    // id that exists).
    assert!(
        errcodes
            .get("tenant.create_tenant")
            .is_some_and(|c| c.contains("23505")),
        "{errcodes:?}"
    );
    let mut documented = BTreeSet::new();
    let mut problems = Vec::new();
    for s in &sections {
        let states = s
            .lines
            .iter()
            .find_map(|l| l.strip_prefix("- SQLSTATEs: "))
            .filter(|v| !v.trim().is_empty());
        if states.is_none() {
            problems.push(format!("{:?}: no \"- SQLSTATEs:\" line", s.names));
        }
        let states = states.unwrap_or("");
        for name in &s.names {
            for code in errcodes.get(name).into_iter().flatten() {
                if !states.split([',', ' ']).any(|c| c == code) {
                    problems.push(format!(
                        "{name}: raises {code} (ERRCODE in its body), not in its SQLSTATEs line: {states}"
                    ));
                }
            }
        }
        for name in &s.names {
            if !documented.insert(name.clone()) {
                problems.push(format!("{name}: documented twice"));
            }
            let Some(signatures) = functions.get(name) else {
                problems.push(format!(
                    "{name}: documented, but the extension has no such function"
                ));
                continue;
            };
            for sig in signatures {
                if !s.lines.contains(sig) {
                    problems.push(format!(
                        "{name}: signature line missing or different: {sig}"
                    ));
                }
            }
            let prefix = format!("- `{name}(");
            for l in s.lines.iter().filter(|l| l.starts_with(&prefix)) {
                if !signatures.contains(l) {
                    problems.push(format!(
                        "{name}: documented signature that does not exist: {l}"
                    ));
                }
            }
        }
    }
    for name in functions.keys() {
        if !documented.contains(name) {
            problems.push(format!(
                "{name}: a function of the extension missing from sql.md"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/src/reference/sql.md:\n{}",
        problems.join("\n")
    );
}
