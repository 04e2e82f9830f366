//! Who is connecting: the tenant from the user name or the database name,
//! bypass users, and the screening of startup parameters a tenant client
//! must not send. Pure functions over the startup parameters.

use crate::config::{Identify, UsernameFormat};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentifyError {
    #[error("no user name in the startup packet")]
    NoUser,
    #[error("no tenant in user name \"{0}\" or database name; connect as user{1}tenant")]
    NoTenant(String, String),
    #[error("invalid tenant id \"{0}\": tenant ids match ^[a-z0-9][a-z0-9_-]{{0,62}}$")]
    BadTenantId(String),
    #[error("tenant connections may not set \"{0}\"")]
    Forbidden(String),
    #[error(
        "tenant connections may only pass -c name=value or --name=value in options, not \"{0}\""
    )]
    BadOption(String),
    #[error("replication connections are not allowed through tenant-router")]
    Replication,
    #[error("the TLS server name names tenant \"{0}\" but the user or database name names tenant \"{1}\"")]
    SniMismatch(String, String),
}

impl IdentifyError {
    /// The SQLSTATE the client gets with its FATAL.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            IdentifyError::NoUser => "08P01",
            IdentifyError::NoTenant(..)
            | IdentifyError::BadTenantId(_)
            | IdentifyError::SniMismatch(..) => "28000",
            IdentifyError::Forbidden(_)
            | IdentifyError::BadOption(_)
            | IdentifyError::Replication => "42501",
        }
    }
}

/// The outcome of identification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A bypass user: forwarded untouched, no context.
    Bypass { user: String },
    /// A tenant client: `user` is the rewritten user name; `from_database`
    /// says the tenant came from the database-name pattern.
    Tenant {
        tenant: String,
        user: String,
        from_database: bool,
    },
}

pub use pg_tenant_token::valid_tenant_id;

pub fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn shorten(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Work out the identity from the TLS server name (`sni`, when the client
/// sent one and it matches `sni_pattern`) and the startup parameters.
///
/// Precedence: bypass users first (untouched); then a matching server name
/// names the tenant, and a user name or database name may name the same
/// tenant (it is stripped as usual) or none, but never another (28000);
/// without one, the user name, then the database name.
pub fn identify(
    cfg: &Identify,
    bypass: &[String],
    params: &[(String, String)],
    sni: Option<&str>,
) -> Result<Identity, IdentifyError> {
    let named = from_names(cfg, bypass, params);
    let Some(t) = sni.and_then(|h| tenant_from_pattern(&cfg.sni_pattern, h)) else {
        return named;
    };
    if !valid_tenant_id(t) {
        return Err(IdentifyError::BadTenantId(shorten(t)));
    }
    match named {
        Ok(Identity::Tenant { tenant, .. }) if tenant != t => {
            Err(IdentifyError::SniMismatch(t.into(), tenant))
        }
        Err(IdentifyError::NoTenant(..)) => Ok(Identity::Tenant {
            tenant: t.into(),
            user: param(params, "user").unwrap_or_default().into(),
            from_database: false,
        }),
        other => other,
    }
}

/// The tenant the server name `sni` names under the SNI pattern, if any.
pub fn sni_tenant<'a>(cfg: &Identify, sni: &'a str) -> Option<&'a str> {
    tenant_from_pattern(&cfg.sni_pattern, sni)
}

/// Whether the server name `sni` names `tenant` under the SNI pattern.
pub fn sni_names(cfg: &Identify, sni: &str, tenant: &str) -> bool {
    tenant_from_pattern(&cfg.sni_pattern, sni) == Some(tenant)
}

/// The identity from the user and database names alone.
fn from_names(
    cfg: &Identify,
    bypass: &[String],
    params: &[(String, String)],
) -> Result<Identity, IdentifyError> {
    let user = param(params, "user")
        .filter(|u| !u.is_empty())
        .ok_or(IdentifyError::NoUser)?;
    if bypass.iter().any(|b| b == user) {
        return Ok(Identity::Bypass { user: user.into() });
    }
    let sep = cfg.separator.as_str();
    let split = match cfg.username_format {
        UsernameFormat::UserTenant => user.rsplit_once(sep),
        UsernameFormat::TenantUser => user.split_once(sep).map(|(t, u)| (u, t)),
        UsernameFormat::None => None,
    };
    if let Some((u, t)) = split.filter(|(u, _)| !u.is_empty()) {
        if !valid_tenant_id(t) {
            return Err(IdentifyError::BadTenantId(shorten(t)));
        }
        return Ok(Identity::Tenant {
            tenant: t.into(),
            user: u.into(),
            from_database: false,
        });
    }
    if let Some(t) = tenant_from_pattern(
        &cfg.database_pattern,
        param(params, "database").unwrap_or(user),
    ) {
        if !valid_tenant_id(t) {
            return Err(IdentifyError::BadTenantId(shorten(t)));
        }
        return Ok(Identity::Tenant {
            tenant: t.into(),
            user: user.into(),
            from_database: true,
        });
    }
    Err(IdentifyError::NoTenant(shorten(user), sep.into()))
}

/// The `{tenant}` part of `name` under `pattern` (a database name or a
/// TLS server name); None when it does not match or the pattern is empty.
fn tenant_from_pattern<'a>(pattern: &str, name: &'a str) -> Option<&'a str> {
    let db = name;
    let (pre, post) = pattern.split_once("{tenant}")?;
    let t = db.strip_prefix(pre)?.strip_suffix(post)?;
    (!t.is_empty()).then_some(t)
}

/// Normalize a setting name as Postgres does for `--name=value`.
fn setting_name(raw: &str) -> String {
    raw.trim().to_ascii_lowercase().replace('-', "_")
}

fn forbidden(name: &str) -> bool {
    name.starts_with("pg_tenant.")
        || matches!(name, "role" | "session_authorization" | "replication")
}

/// Split an `options` value the way Postgres does (whitespace separates,
/// backslash escapes the next character).
fn split_options(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The `name=value` assignments of an `options` value: `-c name=value`,
/// `-cname=value` or `--name=value`; any other word is refused.
fn option_assignments(value: &str) -> Result<Vec<String>, IdentifyError> {
    let words = split_options(value);
    let mut out = Vec::new();
    let mut it = words.into_iter();
    while let Some(w) = it.next() {
        if w == "-c" {
            out.push(it.next().ok_or(IdentifyError::BadOption(w))?);
        } else if let Some(rest) = w.strip_prefix("-c").or_else(|| w.strip_prefix("--")) {
            out.push(rest.to_owned());
        } else {
            return Err(IdentifyError::BadOption(shorten(&w)));
        }
    }
    Ok(out)
}

fn check_setting(assignment: &str) -> Result<(), IdentifyError> {
    let Some((name, _)) = assignment.split_once('=') else {
        return Err(IdentifyError::BadOption(shorten(assignment)));
    };
    let name = setting_name(name);
    if forbidden(&name) {
        return Err(IdentifyError::Forbidden(shorten(&name)));
    }
    Ok(())
}

/// The settings among a client's startup parameters, in order: every
/// parameter but `user`, `database`, `replication` and protocol options
/// (`_pq_.*`), with `options`' `-c name=value` (and `--name=value`) pairs
/// spelled out. A pooled backend gets them with `set_config` (`screen`
/// has refused the forbidden ones already).
pub fn settings(params: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (key, value) in params {
        match setting_name(key).as_str() {
            "user" | "database" | "replication" => {}
            n if n.starts_with("_pq_.") => {}
            "options" => {
                for a in option_assignments(value).unwrap_or_default() {
                    if let Some((n, v)) = a.split_once('=') {
                        out.push((setting_name(n), v.to_owned()));
                    }
                }
            }
            _ => out.push((key.clone(), value.clone())),
        }
    }
    out
}

/// Refuse startup parameters a tenant client must not send: settings of
/// `pg_tenant.*`, `role`, `session_authorization`, a replication request,
/// and any `options` word that is not `-c name=value` / `--name=value`.
pub fn screen(params: &[(String, String)]) -> Result<(), IdentifyError> {
    for (key, value) in params {
        let name = setting_name(key);
        match name.as_str() {
            "user" | "database" => {}
            "replication"
                if !matches!(
                    value.to_ascii_lowercase().as_str(),
                    "false" | "off" | "no" | "0"
                ) =>
            {
                return Err(IdentifyError::Replication);
            }
            "replication" => {}
            "options" => {
                for a in option_assignments(value)? {
                    check_setting(&a)?;
                }
            }
            n if forbidden(n) => return Err(IdentifyError::Forbidden(shorten(n))),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_spell_out_options_and_skip_the_rest() {
        let p = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let params = vec![
            p("user", "app.acme"),
            p("database", "db"),
            p("application_name", "psql"),
            p(
                "options",
                "-c search_path=a,b --statement-timeout=5s -c x.y=1\\ 2",
            ),
            p("_pq_.compression", "on"),
            p("replication", "false"),
        ];
        assert_eq!(
            settings(&params),
            vec![
                p("application_name", "psql"),
                p("search_path", "a,b"),
                p("statement_timeout", "5s"),
                p("x.y", "1 2"),
            ]
        );
    }

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn cfg(format: UsernameFormat, pattern: &str) -> Identify {
        Identify {
            username_format: format,
            database_pattern: pattern.into(),
            ..Identify::default()
        }
    }

    #[test]
    fn sni_names_the_tenant_and_must_agree() {
        let mut c = cfg(UsernameFormat::UserTenant, "{tenant}_db");
        c.sni_pattern = "{tenant}.db.example.com".into();
        let t = |tenant: &str, user: &str, from_database| Identity::Tenant {
            tenant: tenant.into(),
            user: user.into(),
            from_database,
        };
        let sni = Some("acme.db.example.com");
        let id = |params: &[(&str, &str)], sni| identify(&c, &["postgres".into()], &p(params), sni);
        assert_eq!(id(&[("user", "app")], sni), Ok(t("acme", "app", false)));
        assert_eq!(
            id(&[("user", "app.acme")], sni),
            Ok(t("acme", "app", false))
        );
        assert_eq!(
            id(&[("user", "app"), ("database", "acme_db")], sni),
            Ok(t("acme", "app", true))
        );
        assert_eq!(
            id(&[("user", "app.globex")], sni),
            Err(IdentifyError::SniMismatch("acme".into(), "globex".into()))
        );
        assert_eq!(
            id(&[("user", "app"), ("database", "globex_db")], sni),
            Err(IdentifyError::SniMismatch("acme".into(), "globex".into()))
        );
        assert_eq!(
            id(&[("user", "postgres")], sni),
            Ok(Identity::Bypass {
                user: "postgres".into()
            })
        );
        // A server name that does not match the pattern is ignored.
        assert_eq!(
            id(&[("user", "app.globex")], Some("localhost")),
            Ok(t("globex", "app", false))
        );
        assert!(matches!(
            id(&[("user", "app")], Some("bad'id.db.example.com")),
            Err(IdentifyError::BadTenantId(_))
        ));
        // Without a pattern, SNI is not read.
        c.sni_pattern.clear();
        assert!(matches!(
            identify(&c, &[], &p(&[("user", "app")]), sni),
            Err(IdentifyError::NoTenant(..))
        ));
    }

    #[test]
    fn user_dot_tenant() {
        let c = cfg(UsernameFormat::UserTenant, "");
        let id = identify(&c, &[], &p(&[("user", "app.user.acme")]), None).unwrap();
        assert_eq!(
            id,
            Identity::Tenant {
                tenant: "acme".into(),
                user: "app.user".into(),
                from_database: false
            }
        );
    }

    #[test]
    fn tenant_dot_user() {
        let c = cfg(UsernameFormat::TenantUser, "");
        let id = identify(&c, &[], &p(&[("user", "acme.app_user")]), None).unwrap();
        assert!(
            matches!(id, Identity::Tenant { tenant, user, .. } if tenant == "acme" && user == "app_user")
        );
    }

    #[test]
    fn database_pattern() {
        let c = cfg(UsernameFormat::UserTenant, "{tenant}_db");
        let id = identify(
            &c,
            &[],
            &p(&[("user", "app"), ("database", "acme_db")]),
            None,
        )
        .unwrap();
        assert_eq!(
            id,
            Identity::Tenant {
                tenant: "acme".into(),
                user: "app".into(),
                from_database: true
            }
        );
        assert!(matches!(
            identify(&c, &[], &p(&[("user", "app"), ("database", "other")]), None),
            Err(IdentifyError::NoTenant(..))
        ));
    }

    #[test]
    fn bypass_and_errors() {
        let c = cfg(UsernameFormat::UserTenant, "");
        let bypass = vec!["postgres".to_string()];
        assert_eq!(
            identify(&c, &bypass, &p(&[("user", "postgres")]), None).unwrap(),
            Identity::Bypass {
                user: "postgres".into()
            }
        );
        assert_eq!(
            identify(&c, &bypass, &p(&[]), None),
            Err(IdentifyError::NoUser)
        );
        assert!(matches!(
            identify(&c, &bypass, &p(&[("user", "app")]), None),
            Err(IdentifyError::NoTenant(..))
        ));
        for bad in [
            "app.Acme",
            "app.acme'--",
            "app.",
            "app.-x",
            &format!("app.{}", "a".repeat(64)),
        ] {
            let e = identify(&c, &bypass, &p(&[("user", bad)]), None).unwrap_err();
            assert_eq!(e.sqlstate(), "28000", "{bad}: {e}");
        }
    }

    #[test]
    fn screening_refuses_context_settings() {
        for opts in [
            "-c pg_tenant.tenant_id=globex",
            "-cpg_tenant.tenant_id=globex",
            "--pg_tenant.tenant_id=globex",
            "--pg-tenant.tenant-id=globex",
            "-c PG_TENANT.TENANT_ID=globex",
            "-c role=postgres",
            "-c session_authorization=postgres",
            "-c search_path=x -c pg_tenant.context_state=",
            "-c\\ pg_tenant.tenant_id=x",
        ] {
            let e = screen(&p(&[("options", opts)])).unwrap_err();
            assert_eq!(e.sqlstate(), "42501", "{opts}");
        }
        for (k, v) in [
            ("pg_tenant.tenant_id", "x"),
            ("role", "postgres"),
            ("replication", "database"),
        ] {
            assert_eq!(
                screen(&p(&[(k, v)])).unwrap_err().sqlstate(),
                "42501",
                "{k}"
            );
        }
        assert!(screen(&p(&[("options", "-B 100")])).is_err());
        assert!(screen(&p(&[("options", "-c")])).is_err());
    }

    #[test]
    fn screening_lets_ordinary_settings_through() {
        screen(&p(&[
            ("application_name", "psql"),
            ("client_encoding", "UTF8"),
            (
                "options",
                "-c search_path=app,public --statement_timeout=5s",
            ),
            ("replication", "false"),
        ]))
        .unwrap();
    }
}
