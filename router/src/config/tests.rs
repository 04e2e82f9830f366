//! The document's checks and messages, overrides, and what a reload keeps.

use super::*;
use std::path::Path;

fn test_key() -> pg_tenant_token::SigningKey {
    pg_tenant_token::SigningKey::from_bytes(&[3u8; 32])
}

/// A valid document (the defaults).
fn valid() -> RawConfig {
    RawConfig::default()
}

/// `raw` built with the test key.
fn built(raw: RawConfig) -> Config {
    Config::build(raw, Some(test_key())).unwrap()
}

#[test]
fn sample_config_parses_and_validates() {
    let text = include_str!("../../tenant-router.toml");
    let cfg = RawConfig::from_toml(text, Path::new("sample")).unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.identify.username_format, UsernameFormat::UserTenant);
    assert_eq!(
        cfg.metrics,
        MetricsSettings::default(),
        "the sample shows the defaults"
    );
    assert_eq!(
        cfg.fleet,
        crate::config::FleetSettings::default(),
        "the sample shows the defaults"
    );
}

#[test]
fn jwt_user_may_not_be_a_bypass_user_or_hold_the_separator() {
    let mut cfg = valid();
    cfg.auth.jwt = Some(crate::jwt::JwtConfig {
        user: "postgres".into(),
        ..Default::default()
    });
    cfg.bypass_users = vec!["postgres".into()];
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("is also a bypass user"), "{e}");
    cfg.bypass_users.clear();
    cfg.auth.jwt = Some(crate::jwt::JwtConfig {
        user: "jwt.acme".into(),
        ..Default::default()
    });
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("contains the tenant separator"), "{e}");
    cfg.bypass_users = vec!["postgres".into()];
    cfg.auth.jwt = Some(crate::jwt::JwtConfig {
        allowed_roles: vec!["app_user".into(), "postgres".into()],
        ..Default::default()
    });
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("lists \"postgres\", a bypass user"), "{e}");
    cfg.auth.jwt = Some(crate::jwt::JwtConfig::default());
    cfg.validate().expect("the default user name is fine");
}

#[test]
fn unknown_fields_are_refused() {
    let e = RawConfig::from_toml("listn = '127.0.0.1:1'", Path::new("x")).unwrap_err();
    assert!(e.to_string().contains("unknown field `listn`"), "{e}");
    let e = RawConfig::from_toml("[identify]\nsep = '.'", Path::new("x")).unwrap_err();
    assert!(e.to_string().contains("unknown field `sep`"), "{e}");
    let e = RawConfig::from_toml("[metrics]\nidle_ms = 1", Path::new("x")).unwrap_err();
    assert!(e.to_string().contains("unknown field `idle_ms`"), "{e}");
}

#[test]
fn validation_names_the_problem() {
    assert!(Config::build(valid(), None)
        .unwrap_err()
        .to_string()
        .contains("no context signing key"));
    let mut c = valid();
    c.upstream = "nohost".into();
    assert!(c.validate().unwrap_err().to_string().contains("host:port"));
    let mut c = valid();
    c.identify.database_pattern = "{tenant}_{tenant}".into();
    assert!(c
        .validate()
        .unwrap_err()
        .to_string()
        .contains("exactly once"));
    let mut c = valid();
    c.identify.username_format = UsernameFormat::None;
    assert!(c
        .validate()
        .unwrap_err()
        .to_string()
        .contains("no way to identify"));
    let mut c = valid();
    c.admin_listen = "0.0.0.0:9090".into();
    assert!(c
        .validate()
        .unwrap_err()
        .to_string()
        .contains("set admin_token"));
    c.admin_token = "short".into();
    assert!(c
        .validate()
        .unwrap_err()
        .to_string()
        .contains("16 characters"));
    c.admin_token = "a-long-enough-admin-token".into();
    c.validate().unwrap();
    c.admin_listen = "localhost".into();
    assert!(c
        .validate()
        .unwrap_err()
        .to_string()
        .contains("is not an address"));
    c.admin_listen = String::new();
    c.validate().unwrap();
    c.metrics.tenant_idle_ms = 0;
    assert!(c
        .validate()
        .unwrap_err()
        .to_string()
        .contains("metrics.tenant_idle_ms must be greater than 0"));
    valid().validate().unwrap();
}

#[test]
fn unauthenticated_share_is_within_the_cap() {
    let mut c = valid();
    assert_eq!(c.auth.unauthenticated_per_tenant(), 8, "the default");
    c.auth.max_unauthenticated_backends = 3;
    assert_eq!(
        c.auth.unauthenticated_per_tenant(),
        3,
        "unset: never above the cap"
    );
    c.validate().unwrap();
    c.auth.max_unauthenticated_per_tenant = Some(0);
    let e = c.validate().unwrap_err().to_string();
    assert!(
        e.contains("auth.max_unauthenticated_per_tenant must be greater than 0")
            && e.contains("auth.max_unauthenticated_backends, 3"),
        "{e}"
    );
    c.auth.max_unauthenticated_per_tenant = Some(4);
    let e = c.validate().unwrap_err().to_string();
    assert!(
        e.contains(
            "auth.max_unauthenticated_per_tenant (4) must not exceed auth.max_unauthenticated_backends (3)"
        ),
        "{e}"
    );
    c.auth.max_unauthenticated_per_tenant = Some(3);
    c.validate().unwrap();
    assert_eq!(c.auth.unauthenticated_per_tenant(), 3);
    let parsed =
        RawConfig::from_toml("[auth]\nmax_unauthenticated_per_tenant = 2", Path::new("x")).unwrap();
    assert_eq!(parsed.auth.unauthenticated_per_tenant(), 2);
}

#[test]
fn reload_keeps_restart_only_settings() {
    let running = built(valid());
    let mut raw = valid();
    raw.listen = "127.0.0.1:7000".parse().unwrap();
    raw.catalog.cache_ttl_ms = 1;
    raw.startup_timeout_ms = 42;
    let mut new = built(raw);
    assert_eq!(new.keep_restart_only(&running), vec!["listen", "catalog"]);
    assert_eq!(new.fixed.listen, running.fixed.listen);
    assert_eq!(
        new.fixed.catalog.cache_ttl_ms,
        running.fixed.catalog.cache_ttl_ms
    );
    assert_eq!(new.startup_timeout_ms, 42, "reloadable settings change");
}

#[test]
fn a_reload_cannot_remove_the_token_of_a_public_admin_api() {
    let mut public = valid();
    public.admin_listen = "0.0.0.0:9090".into();
    public.admin_token = "a-token-of-sixteen-chars".into();
    let running = built(public);
    // The new file moves the API to loopback (restart-only: not applied)
    // and drops the token: refused.
    let mut raw = valid();
    raw.admin_listen = "127.0.0.1:9090".into();
    raw.admin_token = String::new();
    let e = built(raw)
        .check_reload(&running)
        .expect_err("token removed");
    assert!(e.to_string().contains("cannot remove admin_token"), "{e}");
    // Control: keeping a token, or a loopback API, reloads.
    let mut raw = valid();
    raw.admin_listen = "0.0.0.0:9090".into();
    raw.admin_token = "another-token-16-chars".into();
    built(raw).check_reload(&running).expect("token kept");
    built(valid())
        .check_reload(&built(valid()))
        .expect("loopback");
}

#[test]
fn overrides_win() {
    let mut c = valid();
    c.apply(&Overrides {
        upstream: Some("db:5433".into()),
        log_format: Some(LogFormat::Json),
        ..Overrides::default()
    });
    assert_eq!(c.upstream, "db:5433");
    assert_eq!(c.log_format, LogFormat::Json);
}

#[test]
fn a_reload_names_every_restart_only_setting_it_keeps() {
    let running = built(valid());
    let mut raw = valid();
    raw.listen = "127.0.0.1:7000".parse().unwrap();
    raw.admin_listen = "127.0.0.1:7001".into();
    raw.auth.max_unauthenticated_backends = 9;
    raw.auth.max_unauthenticated_per_tenant = Some(9);
    raw.max_client_connections = 9;
    raw.log_format = LogFormat::Json;
    raw.catalog.url = "host=elsewhere".into();
    raw.pool.size = 9;
    let mut new = built(raw);
    assert_eq!(
        new.keep_restart_only(&running),
        vec![
            "listen",
            "admin_listen",
            "auth.max_unauthenticated_backends",
            "auth.max_unauthenticated_per_tenant",
            "max_client_connections",
            "log_format",
            "catalog",
        ]
    );
    assert_eq!(new.fixed, running.fixed);
    assert_eq!(new.pool.size, 9, "reloadable");
}

#[test]
fn named_upstreams_are_checked_and_loaded_with_the_main_one() {
    let sample = include_str!("../../tenant-router.toml");
    // The sample's commented [upstreams.b], uncommented, is valid.
    let section: String = sample
        .lines()
        .skip_while(|l| !l.starts_with("# [upstreams.b]"))
        .filter(|l| l.starts_with("# ") && (l.contains(" = ") || l.starts_with("# [")))
        .map(|l| l.trim_start_matches("# "))
        .collect::<Vec<_>>()
        .join("\n");
    let section = section
        .replace("verify-full", "require")
        .replace("/etc/tenant-router/b-ca.pem", "");
    let raw = RawConfig::from_toml(&section, Path::new("x")).unwrap();
    raw.validate().unwrap();
    assert_eq!(raw.upstreams["b"].address, "10.0.0.2:5432");
    let cfg = built(raw);
    let names: Vec<&str> = cfg.upstreams.all().map(|u| &*u.name).collect();
    assert_eq!(names, ["main", "b"]);
    let b = cfg.upstreams.get(Some("b")).unwrap();
    assert_eq!((b.pool_size, b.tls.is_some()), (20, true));
    assert_eq!(cfg.upstreams.get(None).unwrap().address, "127.0.0.1:5432");
    assert_eq!(
        cfg.upstreams.get(Some("main")).unwrap().name.as_ref(),
        "main"
    );
    assert!(cfg.upstreams.get(Some("c")).is_none());

    let bad = |toml: &str| {
        RawConfig::from_toml(toml, Path::new("x"))
            .map_err(|e| e.to_string())
            .and_then(|r| r.validate().map_err(|e| e.to_string()))
            .unwrap_err()
    };
    assert!(bad("[upstreams.main]\naddress = 'h:1'").contains("reserved"));
    assert!(bad("[upstreams.B]\naddress = 'h:1'").contains("^[a-z][a-z0-9_]{0,62}$"));
    assert!(bad("[upstreams.b-c]\naddress = 'h:1'").contains("upstream names match"));
    assert!(bad("[upstreams.b]\naddress = 'nohost'")
        .contains("upstreams.b.address \"nohost\" is not host:port"));
    assert!(bad("[upstreams.b]\naddress = 'h:1'\npool_size = 0").contains("upstreams.b.pool_size"));
    assert!(
        bad("[upstreams.b]\naddress = 'h:1'\ntls_ca_file = 'x'").contains("need upstreams.b.tls")
    );
    assert!(bad("[upstreams.b]\naddres = 'h:1'").contains("unknown field `addres`"));
    // TLS inherited from [tls] unless set: a named upstream with its own
    // mode needs its own files (verify-full without a CA file is refused).
    let raw = RawConfig::from_toml(
        "[upstreams.b]\naddress = 'h:1'\ntls = 'verify-full'",
        Path::new("x"),
    )
    .unwrap();
    raw.validate().unwrap();
    let e = Config::build(raw, Some(test_key()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("upstreams.b.tls = verify-ca or verify-full needs upstreams.b.tls_ca_file"),
        "{e}"
    );
}

#[test]
fn pause_timeout_ms_is_bounded() {
    let mut c = valid();
    c.pause_timeout_ms = u64::MAX;
    let e = c.validate().unwrap_err().to_string();
    assert!(
        e.contains("pause_timeout_ms must be from 1 to 86400000"),
        "{e}"
    );
    c.pause_timeout_ms = 0;
    assert!(c.validate().is_err());
    c.pause_timeout_ms = 86_400_000;
    c.validate().expect("a day is fine");
}

#[test]
fn the_catalog_password_comes_from_its_file_never_inline_too() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("catalog-pw-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("catalog.password");
    std::fs::write(&p, "s3cret-catalog-pw\nignored second line\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut raw = valid();
    raw.catalog.password_file = p.display().to_string();
    let cfg = built(raw.clone());
    // Control: the file's first line is the password, put into the url's
    // parsed form; Debug never shows it.
    assert_eq!(
        cfg.fixed.catalog.pg_config().unwrap().get_password(),
        Some(&b"s3cret-catalog-pw"[..])
    );
    assert!(!format!("{cfg:?}").contains("s3cret"), "{cfg:?}");
    // Without the file: no password.
    assert_eq!(
        built(valid())
            .fixed
            .catalog
            .pg_config()
            .unwrap()
            .get_password(),
        None
    );
    // Readable by others: refused, naming the setting, the mode and the fix.
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = Config::build(raw.clone(), Some(test_key()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("catalog.password_file") && e.contains("mode 0644") && e.contains("chmod 600"),
        "{e}"
    );
    // Empty: refused; the text of the file is never in an error.
    std::fs::write(&p, "\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = Config::build(raw.clone(), Some(test_key()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("is empty"), "{e}");
    // Missing: refused, naming the file.
    let mut missing = raw.clone();
    missing.catalog.password_file = dir.join("nope").display().to_string();
    let e = Config::build(missing, Some(test_key()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("catalog.password_file") && e.contains("nope"),
        "{e}"
    );
    // A password inline as well as a file: refused (which one counts?).
    raw.catalog.url = "host=127.0.0.1 user=r password=inline dbname=d".into();
    let e = raw.validate().unwrap_err().to_string();
    assert!(e.contains("keep the password in the file only"), "{e}");
    assert!(!e.contains("inline"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_catalog_password_file_is_a_regular_file_and_its_line_ends_are_not_the_password() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("catalog-pw-edge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("pw");
    let write = |text: &[u8]| {
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    let path = p.display().to_string();
    // CRLF, a lone CR, no line end, and a second line: the first line only.
    for text in [&b"pw-1\r\nx\n"[..], b"pw-1\r", b"pw-1", b"pw-1\nx"] {
        write(text);
        assert_eq!(read_password_file(&path).unwrap(), "pw-1", "{text:?}");
    }
    // Spaces are part of a password.
    write(b" pw 1 \n");
    assert_eq!(read_password_file(&path).unwrap(), " pw 1 ");
    // An empty first line (the password on the second) is refused.
    write(b"\r\npw-1\n");
    let e = read_password_file(&path).unwrap_err().to_string();
    assert!(e.contains("is empty") && !e.contains("pw-1"), "{e}");
    // Not UTF-8: refused, saying so.
    write(b"\xff\xfe\n");
    let e = read_password_file(&path).unwrap_err().to_string();
    assert!(e.contains("is not UTF-8"), "{e}");
    // A symlink is followed: the checks are the target's.
    write(b"pw-1\n");
    let link = dir.join("link");
    std::os::unix::fs::symlink(&p, &link).unwrap();
    assert_eq!(
        read_password_file(&link.display().to_string()).unwrap(),
        "pw-1"
    );
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    let e = read_password_file(&link.display().to_string())
        .unwrap_err()
        .to_string();
    assert!(e.contains("mode 0640"), "{e}");
    // A directory and a FIFO: refused as not a regular file (the FIFO
    // without blocking on it).
    let sub = dir.join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o700)).unwrap();
    let e = read_password_file(&sub.display().to_string())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a regular file"), "{e}");
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.display().to_string()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let e = read_password_file(&fifo.display().to_string())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a regular file"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
