//! The one sanitizer of log text: a value a client chose (user names, a
//! JWT header's `alg` or `kid`, PostgreSQL's words about them, an error
//! message carrying them) is logged through `Escaped`, quoted and escaped;
//! and `with_causes`, an error with the causes its outer text hides.

/// A value's text for a log line, quoted, with quotes, backslashes and
/// control characters escaped (`\"`, `\n`, `\u{1b}`): error messages
/// carry names a client chose, and a raw newline, terminal escape or
/// `key="value"` text would forge or garble log lines.
pub struct Escaped<'a, T: std::fmt::Display>(pub &'a T);

impl<T: std::fmt::Display> std::fmt::Display for Escaped<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0.to_string())
    }
}

/// An error and its causes on one line, as `Display` shows each
/// ("db error: FATAL: password authentication failed for user ...";
/// "error connecting to server: No such file or directory ..."): the
/// outermost text alone often hides what PostgreSQL or the OS said.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        msg.push_str(&format!(": {c}"));
        cause = c.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::Escaped;

    #[test]
    fn log_text_is_quoted_and_escaped() {
        let forged = "user\"\n2026-11-25T00:00:00Z INFO forged reason=\"ok\"\u{1b}[2J";
        assert_eq!(
            Escaped(&forged).to_string(),
            "\"user\\\"\\n2026-11-25T00:00:00Z INFO forged reason=\\\"ok\\\"\\u{1b}[2J\""
        );
        assert_eq!(Escaped(&"plain é").to_string(), "\"plain é\"");
    }
}
