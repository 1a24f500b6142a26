//! Telling systemd the mount is live (`Type=notify` units).
//!
//! systemd passes the address of a datagram socket in `NOTIFY_SOCKET` (a
//! path, or an abstract name written `@name`); a service sends `READY=1`
//! there when it is up, and `systemctl start` returns only then. lsmfs
//! sends it once the mount answers — when `--daemon` would return — and
//! `STOPPING=1` when it begins to unmount. The variable is taken out of the
//! environment at start, so that no child (fusermount3, umount) sees it.
//! Without the variable nothing is sent; a send that fails is logged.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// systemd's notification socket, taken from the environment.
pub struct Notifier(Option<String>);

impl Notifier {
    /// Take `NOTIFY_SOCKET` (call before any thread starts).
    pub fn take() -> Notifier {
        let addr = std::env::var("NOTIFY_SOCKET").ok();
        std::env::remove_var("NOTIFY_SOCKET");
        Notifier(addr.filter(|a| !a.is_empty()))
    }

    /// Send one state line (`READY=1`, `STOPPING=1`, `STATUS=...`).
    pub fn send(&self, state: &str) {
        let Some(addr) = &self.0 else {
            return;
        };
        let sent = (|| -> std::io::Result<()> {
            let sock = UnixDatagram::unbound()?;
            let to = match addr.strip_prefix('@') {
                Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
                None => SocketAddr::from_pathname(addr)?,
            };
            sock.send_to_addr(state.as_bytes(), &to)?;
            Ok(())
        })();
        if let Err(e) = sent {
            log::warn!("telling systemd {state:?} through {addr}: {e}");
        }
    }
}
