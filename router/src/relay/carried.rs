//! What follows a transaction-pooled client from backend to backend, as
//! the relay sees it.

use crate::pool::prepared::{BackendStatements, Prepared};

/// Transaction pooling: what follows a client from backend to backend,
/// as the relay sees it: its named statements and those of the backend
/// serving it now, and the settings it SET on that backend (pg_tenant's
/// report, `pg_tenant.session_settings`).
#[derive(Debug, Default)]
pub struct Carried {
    pub client: Prepared,
    pub backend: BackendStatements,
    /// The last report: setting → value (None: RESET); None: no report
    /// during this relay.
    pub settings: Option<Vec<(String, Option<String>)>>,
    /// A report too large to hold (streamed through the codec): over the
    /// cap by itself.
    pub settings_overflow: bool,
}

impl Carried {
    /// A client's carried state, its statements within `budget`.
    pub fn new(budget: crate::pool::prepared::Budget) -> Carried {
        Carried {
            client: Prepared::new(budget),
            ..Carried::default()
        }
    }
}

/// The ParameterStatus by which pg_tenant reports a transaction-pooled
/// session's own SETs (never passed on to the client).
pub const SESSION_SETTINGS: &str = "pg_tenant.session_settings";

/// pg_tenant's report: a JSON object of setting → text or null; '' (reset)
/// is an empty one. A malformed report counts as empty.
pub fn parse_settings_report(value: &str) -> Vec<(String, Option<String>)> {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(value)
        .map(|m| {
            m.into_iter()
                .map(|(k, v)| (k, v.as_str().map(str::to_owned)))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_reports_parse_values_and_resets() {
        assert_eq!(
            parse_settings_report(r#"{"extra_float_digits":"3","search_path":null}"#),
            vec![
                ("extra_float_digits".to_owned(), Some("3".to_owned())),
                ("search_path".to_owned(), None)
            ]
        );
        assert!(parse_settings_report("").is_empty());
        assert!(parse_settings_report("not json").is_empty());
    }
}
