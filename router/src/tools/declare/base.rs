//! What every part of the declare tool shares (a leaf: it imports none
//! of them): the error, the output formats, writing a line to stdout.

use crate::tools::admin::EXIT_SETUP;
use clap::ValueEnum;
use std::process::ExitCode;

/// Why `apply` or `export` stopped.
#[derive(Debug, thiserror::Error)]
pub enum DeclareError {
    #[error("{0}")]
    Read(String),
    #[error("invalid tenants file: {0}")]
    Syntax(String),
    #[error("tenant \"{tenant}\", field {field}: {problem}")]
    Invalid {
        tenant: String,
        field: String,
        problem: String,
    },
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Connect(String),
    /// The catalog refused a statement: everything was rolled back.
    #[error("tenant \"{tenant}\", {fields}: {message}; nothing was changed (rolled back)")]
    Refused {
        tenant: String,
        fields: String,
        message: String,
    },
    #[error("{0}")]
    Query(String),
}

impl DeclareError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            DeclareError::Refused { .. } | DeclareError::Query(_) => ExitCode::from(1),
            _ => ExitCode::from(EXIT_SETUP),
        }
    }
}

/// Output of `apply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ApplyFormat {
    Text,
    Json,
}

/// Document format of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Toml,
    Json,
}

/// An error message as one line of visible text: its control characters
/// escaped (`\u{1b}`). The message repeats what a file or the catalog holds
/// (a key, a name, a value the catalog refused): raw, an escape sequence
/// would drive the operator's terminal (clear the screen, rewrite the line)
/// and a newline could forge a report line.
pub fn one_line(message: &str) -> String {
    message
        .trim_end()
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Write `text` to stdout: a closed pipe (`| head`) is an error to report,
/// where `print!` panicked (exit 101, after the commit for the summary).
pub fn write_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}
