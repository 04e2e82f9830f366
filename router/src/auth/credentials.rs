//! The credentials file (`auth.credentials_file`): the passwords the router
//! logs into PostgreSQL with, per login role, when it verified the client
//! itself against a tenant secret. TOML:
//!
//! ```toml
//! [roles]
//! app_user = "its PostgreSQL password"
//! ```
//!
//! The file must belong to the router's user and be readable by nobody
//! else (mode 0600 or stricter); it is read at start and on SIGHUP.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read credentials file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("credentials file {path} has mode {mode:04o}: it must be 0600 or stricter (chmod 600 {path})")]
    Mode { path: PathBuf, mode: u32 },
    #[error(
        "credentials file {path} is owned by uid {owner}, not by the router's user (uid {me})"
    )]
    Owner { path: PathBuf, owner: u32, me: u32 },
    #[error("invalid credentials file {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    roles: HashMap<String, String>,
}

/// Login role → password. Debug never shows a password.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials(HashMap<String, String>);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Credentials {
    /// Read and check the file.
    pub fn load(path: &Path) -> Result<Credentials, CredentialsError> {
        let read = |source| CredentialsError::Read {
            path: path.to_owned(),
            source,
        };
        // Checked and read through one open file: replacing the path
        // between the check and the read changes nothing.
        let mut file = std::fs::File::open(path).map_err(read)?;
        let meta = file.metadata().map_err(read)?;
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(CredentialsError::Mode {
                path: path.to_owned(),
                mode,
            });
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(CredentialsError::Owner {
                path: path.to_owned(),
                owner: meta.uid(),
                me,
            });
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file, &mut text).map_err(read)?;
        // TOML's own message may quote the value (a password): say where,
        // and what is expected, instead.
        let parsed: File = toml::from_str(&text).map_err(|e| CredentialsError::Parse {
            path: path.to_owned(),
            reason: format!(
                "{}expected a [roles] table of role = \"password\" strings",
                e.span()
                    .and_then(|s| text.get(..s.start))
                    .map(|before| format!("line {}: ", before.matches('\n').count() + 1))
                    .unwrap_or_default()
            ),
        })?;
        Ok(Credentials(parsed.roles))
    }

    pub fn password(&self, role: &str) -> Option<&str> {
        self.0.get(role).map(String::as_str)
    }

    pub fn from_map(m: HashMap<String, String>) -> Credentials {
        Credentials(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn mode_and_contents_are_checked() {
        let dir = std::env::temp_dir().join(format!("cred-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("creds.toml");
        std::fs::write(&p, "[roles]\napp_user = \"pw\"\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Credentials::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("mode 0644") && e.contains("0600 or stricter"),
            "{e}"
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = Credentials::load(&p).unwrap();
        assert_eq!(c.password("app_user"), Some("pw"));
        assert_eq!(c.password("other"), None);
        assert!(!format!("{c:?}").contains("pw\""), "{c:?}");
        // Another owner (only root can give a file away; skipped otherwise).
        if std::os::unix::fs::chown(&p, Some(65534), None).is_ok() {
            let e = Credentials::load(&p).unwrap_err().to_string();
            assert!(e.contains("is owned by uid 65534"), "{e}");
            // SAFETY: geteuid has no preconditions.
            std::os::unix::fs::chown(&p, Some(unsafe { libc::geteuid() }), None).unwrap();
        }
        // A value of the wrong type is never quoted back (it may be a
        // password); the line is.
        std::fs::write(&p, "[roles]\napp_user = 98765432123\n").unwrap();
        let e = Credentials::load(&p).unwrap_err().to_string();
        assert!(e.contains("invalid credentials file"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        assert!(!e.contains("98765432123"), "{e}");
        std::fs::write(&p, "[rolez]\n").unwrap();
        assert!(Credentials::load(&p).is_err());
        let e = Credentials::load(&dir.join("missing"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read credentials file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
