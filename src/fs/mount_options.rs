//! `lsmfs mount -o OPTS`: what each option means, in one table.
//!
//! [`OPTIONS`] is the one list: `lsmfs mount --help` prints it, and
//! [`parse`] accepts exactly those names (plus FUSE options the kernel
//! knows, passed through). Three kinds:
//!
//! - **Mount flags and FUSE options** (`ro`, `noatime`, `allow_other`...):
//!   become MS_* flags and the FUSE mount data, or lsmfs's own settings.
//! - **lsmfs's flags as `KEY=VALUE`** (`threads=8`, `sync=always`,
//!   `log_file=/var/log/lsmfs.log`...): an fstab line has only `-o` to
//!   say them with, so every `lsmfs mount` flag with a value has a `-o`
//!   spelling; [`take_settings`] moves them into the arguments (an `-o`
//!   setting overrides the flag). Values are checked by the same parsers.
//! - **mount(8)'s own** (`defaults`, `auto`, `noauto`, `nofail`, `_netdev`,
//!   `user`, `users`, `nouser`, `owner`, `group`, `x-*`, `comment=*`): they
//!   say when and by whom mount(8) mounts and mean nothing to the kernel,
//!   so they are accepted and dropped, as mount.fuse3 drops them.
//!
//! Refused with the reason: `uid=`, `gid=`, `umask=` (lsmfs stores every
//! file's owner and mode, so there is nothing to override — unlike sshfs
//! or a FAT volume, which have no owners to show), `auto_unmount`, and
//! `fsname=`/`subtype=` (the source and type are always `lsmfs`).

use super::mount::MountArgs;
use crate::cli_values::{int_in, size_in};
use fuser::MountOption;

/// Every `-o` option, with its one line of help.
pub const OPTIONS: &[(&str, &str)] = &[
    (
        "ro",
        "read-only: nothing is written to the data directory, the lock is shared",
    ),
    ("rw", "read-write (the default)"),
    (
        "allow_other",
        "let every user in (needs user_allow_other in /etc/fuse.conf without root)",
    ),
    ("allow_root", "let the owner and root in"),
    (
        "noatime / atime",
        "the kernel's atime flag (lsmfs never updates atime on reads anyway)",
    ),
    (
        "nosuid / suid",
        "ignore set-user-id bits (default nosuid; users always get nosuid)",
    ),
    (
        "nodev / dev",
        "ignore device files (default nodev; users always get nodev)",
    ),
    ("noexec / exec", "refuse to execute files (default exec)"),
    (
        "sync / async / dirsync",
        "the kernel's synchronous-writes flags",
    ),
    ("noacl / acl", "turn POSIX ACLs off / on (default on)"),
    (
        "nonempty",
        "mount over a non-empty directory (hiding what is there)",
    ),
    (
        "writeback_cache",
        "kernel write-back caching (weakens the kill -9 guarantee)",
    ),
    (
        "io_uring / no_io_uring",
        "insist on / refuse FUSE over io_uring (default: when enabled)",
    ),
    (
        "default_permissions",
        "always on: the kernel checks modes and ACLs",
    ),
    ("threads=N", "as --threads"),
    ("sync=always|on-fsync", "as --sync"),
    ("memtable_size=SIZE", "as --memtable-size"),
    ("readahead_kb=N", "as --readahead-kb"),
    ("space_reserve_mb=N", "as --space-reserve-mb"),
    ("uring_depth=N", "as --uring-depth"),
    ("log_file=PATH", "as --log-file"),
    ("log_size=SIZE", "as --log-size"),
    ("log_keep=N", "as --log-keep"),
    ("strict_perms", "as --strict-perms"),
    (
        "defaults, auto, noauto, nofail, _netdev, user, users, nouser, owner, group, x-*, comment=",
        "mount(8)'s and fstab's: accepted, not passed to the kernel",
    ),
    (
        "uid=, gid=, umask=",
        "refused: lsmfs stores each file's owner and mode (chown/chmod them)",
    ),
    (
        "OTHER=VALUE",
        "any other FUSE option the kernel knows (e.g. max_read=N), passed through",
    ),
];

/// The `-o` help text: one option a line.
pub fn help() -> String {
    let mut s = String::from("Comma-separated mount options (repeatable). Each, one line:\n");
    for (name, what) in OPTIONS {
        s.push_str(&format!("  {name}: {what}\n"));
    }
    s
}

/// mount(8)'s and fstab's options, meaningless to the kernel.
fn is_mount8_option(o: &str) -> bool {
    matches!(
        o,
        "defaults"
            | "auto"
            | "noauto"
            | "nofail"
            | "_netdev"
            | "user"
            | "users"
            | "nouser"
            | "owner"
            | "group"
    ) || o.starts_with("x-")
        || o.starts_with("comment=")
}

/// Move `-o KEY=VALUE` settings of lsmfs's own flags into `args`, leaving
/// the other options in `args.options`.
pub fn take_settings(args: &mut MountArgs) -> Result<(), String> {
    let mut rest = Vec::new();
    for o in args
        .options
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
    {
        let (key, value) = o.split_once('=').unwrap_or((o, ""));
        let bad = |e: String| format!("-o {o}: {e}");
        match (key, o.contains('=')) {
            ("threads", true) => {
                args.threads = int_in(1, super::mount::MAX_THREADS)(value).map_err(bad)?
            }
            ("sync", true) if value == "always" || value == "on-fsync" => {
                args.sync = value.to_string()
            }
            ("sync", true) => return Err(bad("use sync=always or sync=on-fsync".into())),
            ("memtable_size", true) => {
                args.memtable_size = size_in(64 << 10, 1 << 30)(value).map_err(bad)?
            }
            ("readahead_kb", true) => args.readahead_kb = int_in(0, 1 << 20)(value).map_err(bad)?,
            ("space_reserve_mb", true) => {
                args.space_reserve_mb = Some(int_in(0, 1 << 40)(value).map_err(bad)?)
            }
            ("uring_depth", true) => {
                args.uring_depth = int_in(1, u32::MAX as u64)(value).map_err(bad)? as u32
            }
            ("log_file", true) if !value.is_empty() => args.log_file = Some(value.into()),
            ("log_size", true) => {
                args.log_size = crate::log_file::LOG_SIZE_RANGE(value).map_err(bad)?
            }
            ("log_keep", true) => args.log_keep = int_in(0, 100)(value).map_err(bad)?,
            ("strict_perms", false) => args.strict_perms = true,
            _ => rest.push(o.to_string()),
        }
    }
    args.options = rest;
    Ok(())
}

/// The options, read.
#[derive(Debug)]
pub struct Parsed {
    /// For fuser's mount path (the unprivileged fallback).
    pub fuse: Vec<MountOption>,
    /// For mount(2): MS_* flags and the FUSE data options.
    pub flags: libc::c_ulong,
    pub data: Vec<String>,
    pub acl: fuser::SessionACL,
    pub read_only: bool,
    pub writeback_cache: bool,
    pub no_acl: bool,
    /// `-o io_uring` (Some(true)) / `-o no_io_uring` (Some(false)); None:
    /// the ring when the kernel has it enabled.
    pub io_uring: Option<bool>,
    /// `-o nonempty`: mount over a non-empty directory (checked by us; the
    /// kernel does not know the option).
    pub nonempty: bool,
}

impl Parsed {
    /// The options for fusermount3: name and type, the MS_* flags by name
    /// (it forces nosuid,nodev for users anyway), the FUSE data options.
    pub fn fusermount_options(&self) -> String {
        let mut o = vec!["fsname=lsmfs".to_string(), "subtype=lsmfs".to_string()];
        for (flag, name) in [
            (libc::MS_RDONLY, "ro"),
            (libc::MS_NOSUID, "nosuid"),
            (libc::MS_NODEV, "nodev"),
            (libc::MS_NOEXEC, "noexec"),
            (libc::MS_NOATIME, "noatime"),
            (libc::MS_SYNCHRONOUS, "sync"),
            (libc::MS_DIRSYNC, "dirsync"),
        ] {
            if self.flags & flag != 0 {
                o.push(name.into());
            }
        }
        o.extend(self.data.iter().cloned());
        o.join(",")
    }
}

pub fn parse(opts: &[String]) -> Result<Parsed, String> {
    let mut p = Parsed {
        fuse: vec![
            MountOption::FSName("lsmfs".into()),
            MountOption::Subtype("lsmfs".into()),
            MountOption::DefaultPermissions,
        ],
        flags: libc::MS_NOSUID | libc::MS_NODEV,
        data: vec!["default_permissions".into()],
        acl: fuser::SessionACL::Owner,
        read_only: false,
        writeback_cache: false,
        no_acl: false,
        io_uring: None,
        nonempty: false,
    };
    let flag = |p: &mut Parsed, set: libc::c_ulong, clear: libc::c_ulong, o: MountOption| {
        p.flags = (p.flags | set) & !clear;
        p.fuse.retain(|x| *x != o);
        p.fuse.push(o);
    };
    for o in opts.iter().flat_map(|s| s.split(',')).map(str::trim) {
        match o {
            "" | "default_permissions" | "rw" => {}
            o if is_mount8_option(o) => {}
            "allow_other" => p.acl = fuser::SessionACL::All,
            "allow_root" => p.acl = fuser::SessionACL::RootAndOwner,
            "ro" => {
                p.read_only = true;
                flag(&mut p, libc::MS_RDONLY, 0, MountOption::RO);
            }
            "writeback_cache" => p.writeback_cache = true,
            "acl" => p.no_acl = false,
            "noacl" => p.no_acl = true,
            "io_uring" => p.io_uring = Some(true),
            "no_io_uring" => p.io_uring = Some(false),
            "nonempty" => p.nonempty = true,
            "noatime" => flag(&mut p, libc::MS_NOATIME, 0, MountOption::NoAtime),
            "atime" => flag(&mut p, 0, libc::MS_NOATIME, MountOption::Atime),
            "nodev" => flag(&mut p, libc::MS_NODEV, 0, MountOption::NoDev),
            "dev" => flag(&mut p, 0, libc::MS_NODEV, MountOption::Dev),
            "nosuid" => flag(&mut p, libc::MS_NOSUID, 0, MountOption::NoSuid),
            "suid" => flag(&mut p, 0, libc::MS_NOSUID, MountOption::Suid),
            "noexec" => flag(&mut p, libc::MS_NOEXEC, 0, MountOption::NoExec),
            "exec" => flag(&mut p, 0, libc::MS_NOEXEC, MountOption::Exec),
            "sync" => flag(&mut p, libc::MS_SYNCHRONOUS, 0, MountOption::Sync),
            "async" => flag(&mut p, 0, libc::MS_SYNCHRONOUS, MountOption::Async),
            "dirsync" => flag(&mut p, libc::MS_DIRSYNC, 0, MountOption::DirSync),
            "auto_unmount" => {
                return Err(
                    "-o auto_unmount is not supported: a killed daemon's mount is \
                            detached by the next `lsmfs mount` instead"
                        .into(),
                )
            }
            o if ["uid=", "gid=", "umask="].iter().any(|k| o.starts_with(k)) => {
                return Err(format!(
                    "-o {o} is refused: lsmfs stores every file's owner and mode, and the \
                     kernel checks them (chown and chmod work and persist), so there is \
                     nothing to override; give files to a user with chown -R through the \
                     mount, share the mount with -o allow_other"
                ))
            }
            o if o.starts_with("fsname=") || o.starts_with("subtype=") => {
                return Err(format!("-o {o}: the name and type are always lsmfs"))
            }
            other => {
                p.data.push(other.to_string());
                p.fuse.push(MountOption::CUSTOM(other.to_string()));
            }
        }
    }
    if p.acl != fuser::SessionACL::Owner {
        // The kernel only knows allow_other; fuser filters allow_root itself.
        p.data.push("allow_other".into());
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_map_to_flags_data_and_config() {
        let p = parse(&["ro,noatime".into(), "allow_root,max_read=65536".into()]).unwrap();
        assert!(p.read_only);
        assert_ne!(p.flags & libc::MS_RDONLY, 0);
        assert_ne!(p.flags & libc::MS_NOATIME, 0);
        assert_ne!(p.flags & libc::MS_NOSUID, 0);
        assert_eq!(p.acl, fuser::SessionACL::RootAndOwner);
        assert_eq!(
            p.data,
            ["default_permissions", "max_read=65536", "allow_other"]
        );
        assert!(p
            .fuse
            .contains(&MountOption::CUSTOM("max_read=65536".into())));
        let p = parse(&["writeback_cache,dev,rw".into()]).unwrap();
        assert!(p.writeback_cache && !p.read_only);
        assert_eq!(p.flags & libc::MS_NODEV, 0);
        assert_eq!(p.acl, fuser::SessionACL::Owner);
        assert!(parse(&["auto_unmount".into()]).is_err());
        assert!(parse(&["fsname=x".into()]).is_err());
    }

    #[test]
    fn mount8_options_never_reach_the_kernel_and_owner_overrides_are_refused() {
        let p = parse(&[
            "defaults,_netdev,noauto,nofail,user,users,auto,rw".into(),
            "x-systemd.automount,comment=backup,nouser".into(),
        ])
        .unwrap();
        assert_eq!(p.data, ["default_permissions"]);
        assert_eq!(p.flags, libc::MS_NOSUID | libc::MS_NODEV);
        for o in ["uid=1000", "gid=100", "umask=022"] {
            let e = parse(&[o.into()]).unwrap_err();
            assert!(e.contains("stores every file's owner and mode"), "{e}");
        }
    }

    #[test]
    fn every_option_has_a_help_line() {
        let h = help();
        for o in [
            "ro",
            "allow_other",
            "nonempty",
            "noacl",
            "threads=N",
            "uid=",
        ] {
            assert!(h.lines().any(|l| l.trim_start().starts_with(o)), "{o}");
        }
    }
}
