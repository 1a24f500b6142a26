//! Where a store lives: a data directory, or `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`.
//!
//! The URL holds endpoints and the prefix only. Credentials never go in
//! it (nor anywhere on the command line, which `ps` and `/proc/PID/cmdline`
//! show): the user is `--etcd-user`, its password is read from
//! `--etcd-password-file` or the environment variable `LSMFS_ETCD_PASSWORD`,
//! and TLS material comes from files (`--etcd-ca`, `--etcd-cert`,
//! `--etcd-key`). A URL is shown in logs and errors as it was given.

use std::path::{Path, PathBuf};

/// The environment variable holding the etcd user's password.
pub const PASSWORD_ENV: &str = "LSMFS_ETCD_PASSWORD";

/// A parsed `etcd://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdUrl {
    /// `host:port`, at least one.
    pub endpoints: Vec<String>,
    /// Every key of the filesystem starts with this (the URL's path + `/`).
    pub prefix: Vec<u8>,
    /// As given, for messages.
    pub shown: String,
}

/// Whether a DATA_DIR argument names an etcd store.
pub fn is_etcd(arg: &Path) -> bool {
    arg.as_os_str().as_encoded_bytes().starts_with(b"etcd://")
}

impl EtcdUrl {
    pub fn parse(arg: &str) -> Result<EtcdUrl, String> {
        // Whatever sits before an `@` may be a password: never echoed.
        let safe = match arg.split_once('@') {
            Some((_, after)) => format!("etcd://…@{after}"),
            None => arg.to_string(),
        };
        let bad = |why: &str| {
            format!(
                "{safe}: {why} (expected etcd://HOST:PORT[,HOST:PORT...]/PREFIX; \
                 credentials go in --etcd-user and {PASSWORD_ENV} or --etcd-password-file)"
            )
        };
        let rest = arg
            .strip_prefix("etcd://")
            .ok_or_else(|| bad("not an etcd URL"))?;
        let (hosts, path) = rest.split_once('/').ok_or_else(|| bad("no /PREFIX"))?;
        if hosts.contains('@') {
            return Err(bad(
                "credentials in the URL are refused: they would show in ps",
            ));
        }
        if path.is_empty() || path.contains('?') || path.contains('#') || path.ends_with('/') {
            return Err(bad(
                "PREFIX must be a non-empty path without ?, # or a trailing /",
            ));
        }
        let mut endpoints = Vec::new();
        for h in hosts.split(',') {
            let port = h.rsplit_once(':').map(|(host, p)| (host, p.parse::<u16>()));
            match port {
                Some((host, Ok(p))) if !host.is_empty() && p > 0 => endpoints.push(h.to_string()),
                _ => return Err(bad(&format!("endpoint {h:?} is not HOST:PORT"))),
            }
        }
        let mut prefix = path.as_bytes().to_vec();
        prefix.push(b'/');
        Ok(EtcdUrl {
            endpoints,
            prefix,
            shown: arg.to_string(),
        })
    }
}

/// How to reach and authenticate to etcd (`lsmfs mount`, `check`, `inspect path`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct EtcdArgs {
    /// etcd user (its password: the LSMFS_ETCD_PASSWORD environment
    /// variable or --etcd-password-file, never the command line).
    #[arg(long)]
    pub etcd_user: Option<String>,
    /// File whose first line is the etcd user's password.
    #[arg(long)]
    pub etcd_password_file: Option<PathBuf>,
    /// CA certificate (PEM) that signed the etcd servers' certificates: use TLS.
    #[arg(long)]
    pub etcd_ca: Option<PathBuf>,
    /// Client certificate (PEM) for etcd's client-certificate auth (with --etcd-key).
    #[arg(long)]
    pub etcd_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long)]
    pub etcd_key: Option<PathBuf>,
}

/// Credentials and TLS material, read from their files.
#[derive(Clone, Default)]
pub struct Access {
    pub user: Option<(String, String)>,
    pub ca: Option<Vec<u8>>,
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password, even in a debug print.
        f.debug_struct("Access")
            .field("user", &self.user.as_ref().map(|(u, _)| u))
            .field("tls", &self.ca.is_some())
            .field("client_cert", &self.identity.is_some())
            .finish()
    }
}

fn read(what: &str, p: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("{what} {}: {e}", p.display()))
}

impl EtcdArgs {
    /// Read the files named; a half-given pair is refused.
    pub fn access(&self) -> Result<Access, String> {
        let password = match &self.etcd_password_file {
            Some(p) => {
                let text = read("--etcd-password-file", p)?;
                let text = String::from_utf8(text)
                    .map_err(|_| format!("--etcd-password-file {}: not UTF-8", p.display()))?;
                Some(text.lines().next().unwrap_or("").to_string())
            }
            None => std::env::var(PASSWORD_ENV).ok(),
        };
        let user = match (&self.etcd_user, password) {
            (Some(u), Some(p)) => Some((u.clone(), p)),
            (Some(u), None) => {
                return Err(format!(
                "--etcd-user {u} needs a password: set {PASSWORD_ENV} or give --etcd-password-file"
            ))
            }
            (None, _) if self.etcd_password_file.is_some() => {
                return Err("--etcd-password-file needs --etcd-user".into())
            }
            (None, _) => None,
        };
        let identity = match (&self.etcd_cert, &self.etcd_key) {
            (Some(c), Some(k)) => Some((read("--etcd-cert", c)?, read("--etcd-key", k)?)),
            (None, None) => None,
            _ => return Err("--etcd-cert and --etcd-key go together".into()),
        };
        let ca = match &self.etcd_ca {
            Some(p) => Some(read("--etcd-ca", p)?),
            None if identity.is_some() => {
                return Err("--etcd-cert needs --etcd-ca (the servers' CA)".into())
            }
            None => None,
        };
        Ok(Access { user, ca, identity })
    }

    /// The flags again, for the re-executed daemon (the password travels
    /// in the environment or its file, never as an argument).
    pub fn to_args(&self) -> Vec<std::ffi::OsString> {
        let mut out = Vec::new();
        let mut push = |flag: &str, v: Option<&std::ffi::OsStr>| {
            if let Some(v) = v {
                out.push(flag.into());
                out.push(v.to_os_string());
            }
        };
        push(
            "--etcd-user",
            self.etcd_user.as_deref().map(std::ffi::OsStr::new),
        );
        push(
            "--etcd-password-file",
            self.etcd_password_file.as_deref().map(Path::as_os_str),
        );
        push("--etcd-ca", self.etcd_ca.as_deref().map(Path::as_os_str));
        push(
            "--etcd-cert",
            self.etcd_cert.as_deref().map(Path::as_os_str),
        );
        push("--etcd-key", self.etcd_key.as_deref().map(Path::as_os_str));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_or_say_why() {
        let u = EtcdUrl::parse("etcd://127.0.0.1:23791,localhost:23792/fs/a").unwrap();
        assert_eq!(u.endpoints, ["127.0.0.1:23791", "localhost:23792"]);
        assert_eq!(u.prefix, b"fs/a/");
        for bad in [
            "etcd://127.0.0.1:2379",
            "etcd://127.0.0.1:2379/",
            "etcd://127.0.0.1/p",
            "etcd://h:0/p",
            "etcd://h:99999/p",
            "etcd://user:pw@h:1/p",
            "etcd://h:1/p?x=1",
            "etcd://:1/p",
            "http://h:1/p",
        ] {
            let e = EtcdUrl::parse(bad).unwrap_err();
            assert!(e.starts_with(bad) || bad.contains('@'), "{e}");
            assert!(!e.contains("pw"), "{e}");
        }
        assert!(is_etcd(Path::new("etcd://h:1/p")));
        assert!(!is_etcd(Path::new("/srv/etcd://")));
    }
}
