//! Unit tests of `spec` (reading and checking a tenants file).

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
    let r =
        toml("[[tenants]]\nid = \"acme\"\npassword_env = \"ACME_PW\"\npassword_file = \"/x\"\n");
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
    let d = toml(
        "[[tenants]]\nid = \"acme\"\nburst_multiplier = nan\n[defaults]\nburst_multiplier = inf\n",
    )
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
    let e = toml("[[tenants]]\nid = \"acme\"\npassword_env = \"correct horse!\"\n").unwrap_err();
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
