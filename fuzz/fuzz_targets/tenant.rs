//! The tenant-name rules on their own: startup parameters (name NUL
//! value NUL ...), an optional TLS server name, and one byte choosing the
//! identification settings. `pg_tenant_fuzz::tenant` holds the
//! invariants: an accepted tenant id is valid by the rules and rebuilds
//! the user or database name it came from; what `screen` lets through
//! sets nothing forbidden, as PostgreSQL would read it; messages are
//! clean. `valid_tenant_id` is compared with an independent model.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pg_tenant_fuzz::{part, parts, tenant};
use tenant_router::identify::valid_tenant_id;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let p = parts(rest);
    let Ok(text) = std::str::from_utf8(part(&p, 0)) else {
        return;
    };
    let sni = std::str::from_utf8(part(&p, 1))
        .ok()
        .filter(|s| !s.is_empty());
    let words: Vec<&str> = text.split('\0').collect();
    let mut params: Vec<(String, String)> = Vec::new();
    for kv in words.chunks(2) {
        let (k, v) = (kv[0], kv.get(1).copied().unwrap_or_default());
        if k.is_empty() || params.iter().any(|(o, _)| o == k) {
            continue;
        }
        params.push((k.to_owned(), v.to_owned()));
    }
    for w in &words {
        assert_eq!(valid_tenant_id(w), tenant::model_valid_tenant(w), "{w:?}");
    }
    tenant::check_screen(&params);
    tenant::check_identify(&tenant::config(sel), &params, sni);
});
