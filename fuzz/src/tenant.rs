//! Invariants of `identify`: who a startup packet says it is, and which
//! startup parameters a tenant client may pass. Checked against a model
//! of how PostgreSQL itself reads the parameters, not against the router's
//! own helpers.

use crate::assert_clean_message;
use tenant_router::config::{Identify, UsernameFormat};
use tenant_router::identify::{identify, screen, settings, IdentifyError, Identity};

/// The tenant-id rule written independently: `^[a-z0-9][a-z0-9_-]{0,62}$`.
pub fn model_valid_tenant(id: &str) -> bool {
    let mut chars = id.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let alnum = |c: char| matches!(c, 'a'..='z' | '0'..='9');
    id.chars().count() <= 63 && alnum(first) && chars.all(|c| alnum(c) || c == '_' || c == '-')
}

/// The identification settings a fuzz input selects (one byte).
pub fn config(sel: u8) -> Identify {
    let username_format = match sel & 3 {
        0 | 3 => UsernameFormat::UserTenant,
        1 => UsernameFormat::TenantUser,
        _ => UsernameFormat::None,
    };
    let separator = [".", "@", "__", "#"][usize::from((sel >> 2) & 3)].to_owned();
    let database_pattern =
        ["", "{tenant}_db", "t_{tenant}", "{tenant}"][usize::from((sel >> 4) & 3)];
    let sni_pattern = ["", "{tenant}.db.example.com"][usize::from((sel >> 6) & 1)];
    Identify {
        username_format,
        separator,
        database_pattern: database_pattern.into(),
        default_database: "postgres".into(),
        sni_pattern: sni_pattern.into(),
    }
}

pub const BYPASS: &[&str] = &["postgres", "admin.acme"];

fn get<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `pre{tenant}post` with `tenant` in the middle.
fn fill(pattern: &str, tenant: &str) -> Option<String> {
    let (pre, post) = pattern.split_once("{tenant}")?;
    Some(format!("{pre}{tenant}{post}"))
}

/// Identify, then check what came out.
pub fn check_identify(cfg: &Identify, params: &[(String, String)], sni: Option<&str>) {
    let bypass: Vec<String> = BYPASS.iter().map(|s| s.to_string()).collect();
    let user = get(params, "user");
    let sni_tenant = sni.and_then(|h| {
        let (pre, post) = cfg.sni_pattern.split_once("{tenant}")?;
        let t = h.strip_prefix(pre)?.strip_suffix(post)?;
        (!t.is_empty()).then_some(t)
    });
    match identify(cfg, &bypass, params, sni) {
        Ok(Identity::Bypass { user: u }) => {
            assert!(BYPASS.contains(&u.as_str()));
            assert_eq!(Some(u.as_str()), user);
        }
        Ok(Identity::Tenant {
            tenant,
            user: u,
            from_database,
        }) => {
            assert!(model_valid_tenant(&tenant), "accepted tenant {tenant:?}");
            if let Some(t) = sni_tenant {
                assert_eq!(t, tenant, "the server name names the tenant");
            }
            let user = user.unwrap_or_default();
            let sep = &cfg.separator;
            if from_database {
                let db = get(params, "database").unwrap_or(user);
                assert_eq!(fill(&cfg.database_pattern, &tenant).as_deref(), Some(db));
                assert_eq!(u, user);
            } else if sni_tenant.is_some() && u == user {
                // The tenant came from the server name alone.
            } else {
                let rebuilt = match cfg.username_format {
                    UsernameFormat::UserTenant => format!("{u}{sep}{tenant}"),
                    UsernameFormat::TenantUser => format!("{tenant}{sep}{u}"),
                    UsernameFormat::None => panic!("tenant from a user name with format none"),
                };
                assert_eq!(rebuilt, user, "user name rebuilt from its parts");
                assert!(!u.is_empty());
            }
        }
        Err(e) => {
            assert!(matches!(e.sqlstate(), "08P01" | "28000" | "42501"));
            assert_clean_message(&e.to_string());
            if e == IdentifyError::NoUser {
                assert!(user.is_none_or(str::is_empty));
            }
        }
    }
}

/// PostgreSQL's `pg_split_opts`: words split at ASCII white space,
/// backslash escapes the next byte.
fn pg_split_opts(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c' => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// A setting PostgreSQL would apply that a tenant client must not set.
fn dangerous(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "role" || n == "session_authorization" || n.starts_with("pg_tenant.")
}

/// `screen` lets a packet through only if PostgreSQL, reading the same
/// parameters, would set nothing forbidden; `settings` (what a pooled
/// backend is given) then holds nothing forbidden either.
pub fn check_screen(params: &[(String, String)]) {
    let verdict = screen(params);
    if let Err(e) = &verdict {
        assert_eq!(e.sqlstate(), "42501");
        assert_clean_message(&e.to_string());
        return;
    }
    for (k, v) in params {
        match k.as_str() {
            "user" | "database" => {}
            "replication" => assert!(
                matches!(
                    v.to_ascii_lowercase().as_str(),
                    "false" | "off" | "no" | "0"
                ),
                "replication={v:?} passed the screen"
            ),
            // Non-ASCII whitespace (e.g. U+0085): the router splits there
            // too, PostgreSQL does not, so the words differ; every such
            // difference seen left PostgreSQL a word it refuses the whole
            // connection for ("-c\u{85}": "-c requires a value"; a bare
            // "\u{85}": "invalid command-line argument"). The model below
            // is PostgreSQL's ASCII split, so it judges ASCII options only.
            "options"
                if v.chars()
                    .any(|c| c.is_whitespace() && !c.is_ascii_whitespace()) => {}
            "options" => {
                let mut words = pg_split_opts(v).into_iter();
                while let Some(w) = words.next() {
                    if w.is_empty() {
                        // An empty word (a lone backslash): PostgreSQL
                        // refuses the connection ("invalid command-line
                        // argument"); nothing after it is applied.
                        break;
                    }
                    let assignment = if w == "-c" {
                        words.next().unwrap_or_default()
                    } else if let Some(rest) = w.strip_prefix("-c").or(w.strip_prefix("--")) {
                        rest.to_owned()
                    } else {
                        panic!("options word {w:?} passed the screen in {v:?}")
                    };
                    // ParseLongOption: '-' in the name reads as '_'.
                    let name = assignment.split('=').next().unwrap_or_default();
                    let name = name.replace('-', "_");
                    assert!(!dangerous(&name), "options {v:?} sets {name:?}");
                }
            }
            k => assert!(!dangerous(k), "parameter {k:?} passed the screen"),
        }
    }
    for (name, _) in settings(params) {
        assert!(!dangerous(name.trim()), "settings hold {name:?}");
    }
}
