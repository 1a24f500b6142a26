//! POSIX ACLs (POSIX.1e draft 17, as Linux has them).
//!
//! With `FUSE_POSIX_ACL` the kernel enforces ACLs itself (under
//! `default_permissions`) and caches them; it reads and writes them as the
//! xattrs `system.posix_acl_access` and `system.posix_acl_default`, which
//! are stored as any other xattr. What is left to the filesystem, and so
//! done here, is what ext4 does in its own ACL code:
//!
//! - an access ACL written sets the mode's permission bits (owner from
//!   USER_OBJ, group from MASK — or GROUP_OBJ without one — other from
//!   OTHER); one that says no more than the mode (three entries) is not
//!   stored at all;
//! - chmod rewrites those three entries of a stored access ACL;
//! - a new inode in a directory with a default ACL gets that ACL as its
//!   access ACL, masked by the mode asked for (the umask is then not
//!   applied), and a new directory also inherits it as its own default.
//!
//! The xattr format (`posix_acl_xattr_header` and entries, little-endian):
//! `u32 version = 2`, then per entry `u16 tag, u16 perm, u32 id`, with the
//! id only meaningful for USER and GROUP entries; entries sorted by tag,
//! then id. Anything else is EINVAL.

pub const ACCESS: &[u8] = b"system.posix_acl_access";
pub const DEFAULT: &[u8] = b"system.posix_acl_default";

const VERSION: u32 = 2;
const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;
const UNDEFINED_ID: u32 = u32::MAX;
/// Entries one ACL may hold (ext4 fits ~500 in a block; the kernel's
/// xattr size limit allows 8,191).
const MAX_ENTRIES: usize = 8191;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    tag: u16,
    perm: u16,
    id: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    entries: Vec<Entry>,
}

impl Acl {
    /// Decode and validate an ACL xattr value.
    pub fn decode(v: &[u8]) -> Result<Acl, i32> {
        if v.len() < 4 || !(v.len() - 4).is_multiple_of(8) || (v.len() - 4) / 8 > MAX_ENTRIES {
            return Err(libc::EINVAL);
        }
        let u16_at = |i: usize| u16::from_le_bytes([v[i], v[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([v[i], v[i + 1], v[i + 2], v[i + 3]]);
        if u32_at(0) != VERSION {
            return Err(libc::EINVAL);
        }
        let entries = (4..v.len())
            .step_by(8)
            .map(|i| Entry {
                tag: u16_at(i),
                perm: u16_at(i + 2),
                id: u32_at(i + 4),
            })
            .collect();
        let acl = Acl { entries };
        acl.validate()?;
        Ok(acl)
    }

    /// What `posix_acl_valid` checks: known tags, permissions within rwx,
    /// one each of USER_OBJ, GROUP_OBJ and OTHER, USER and GROUP entries
    /// with distinct ids in order, and a MASK if there are any of those.
    fn validate(&self) -> Result<(), i32> {
        let mut last: Option<(u16, u32)> = None;
        let (mut user_obj, mut group_obj, mut other, mut mask, mut named) = (0, 0, 0, 0, 0);
        for e in &self.entries {
            if e.perm & !7 != 0 {
                return Err(libc::EINVAL);
            }
            let id = match e.tag {
                USER_OBJ => {
                    user_obj += 1;
                    0
                }
                GROUP_OBJ => {
                    group_obj += 1;
                    0
                }
                OTHER => {
                    other += 1;
                    0
                }
                MASK => {
                    mask += 1;
                    0
                }
                USER | GROUP if e.id != UNDEFINED_ID => {
                    named += 1;
                    e.id
                }
                _ => return Err(libc::EINVAL),
            };
            if last.is_some_and(|l| l >= (e.tag, id)) {
                return Err(libc::EINVAL); // out of order, or a duplicate
            }
            last = Some((e.tag, id));
        }
        if user_obj != 1 || group_obj != 1 || other != 1 || mask > 1 || (named > 0 && mask == 0) {
            return Err(libc::EINVAL);
        }
        Ok(())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(4 + 8 * self.entries.len());
        v.extend_from_slice(&VERSION.to_le_bytes());
        for e in &self.entries {
            v.extend_from_slice(&e.tag.to_le_bytes());
            v.extend_from_slice(&e.perm.to_le_bytes());
            let id = if matches!(e.tag, USER | GROUP) {
                e.id
            } else {
                UNDEFINED_ID
            };
            v.extend_from_slice(&id.to_le_bytes());
        }
        v
    }

    /// Only the three entries the mode bits hold: storing it adds nothing.
    pub fn is_minimal(&self) -> bool {
        self.entries.len() == 3
    }

    fn perm_of(&self, tag: u16) -> u32 {
        self.entries
            .iter()
            .find(|e| e.tag == tag)
            .map_or(0, |e| u32::from(e.perm))
    }

    /// The entry the mode's group bits stand for: MASK if any, else GROUP_OBJ.
    fn group_class(&self) -> u16 {
        if self.entries.iter().any(|e| e.tag == MASK) {
            MASK
        } else {
            GROUP_OBJ
        }
    }

    /// `mode` with its permission bits (0o777) set from the ACL.
    pub fn apply_to_mode(&self, mode: u32) -> u32 {
        (mode & !0o777)
            | self.perm_of(USER_OBJ) << 6
            | self.perm_of(self.group_class()) << 3
            | self.perm_of(OTHER)
    }

    /// chmod: the owner, group-class and other entries follow `mode`.
    pub fn chmod(&mut self, mode: u32) {
        let group = self.group_class();
        for e in &mut self.entries {
            let shift = match e.tag {
                USER_OBJ => 6,
                OTHER => 0,
                t if t == group => 3,
                _ => continue,
            };
            e.perm = ((mode >> shift) & 7) as u16;
        }
    }

    /// A new inode's access ACL from its directory's default ACL, and its
    /// mode: each of the owner, group-class and other entries is cut to
    /// what `mode` asks for, and the mode to what they grant
    /// (`posix_acl_create_masq`).
    pub fn inherit(&self, mode: u32) -> (Acl, u32) {
        let mut acl = self.clone();
        let group = acl.group_class();
        let mut out = mode;
        for e in &mut acl.entries {
            let shift = match e.tag {
                USER_OBJ => 6,
                OTHER => 0,
                t if t == group => 3,
                _ => continue,
            };
            e.perm &= ((mode >> shift) & 7) as u16;
            out = (out & !(7 << shift)) | u32::from(e.perm) << shift;
        }
        (acl, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut v = VERSION.to_le_bytes().to_vec();
        for &(tag, perm, id) in entries {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        v
    }

    const U: u32 = UNDEFINED_ID;

    #[test]
    fn decode_validates_like_the_kernel() {
        let ok = acl(&[
            (USER_OBJ, 6, U),
            (USER, 4, 1000),
            (GROUP_OBJ, 4, U),
            (MASK, 4, U),
            (OTHER, 0, U),
        ]);
        let a = Acl::decode(&ok).unwrap();
        assert_eq!(a.encode(), ok);
        assert!(!a.is_minimal());
        assert!(
            Acl::decode(&acl(&[(USER_OBJ, 6, U), (GROUP_OBJ, 4, U), (OTHER, 4, U)]))
                .unwrap()
                .is_minimal()
        );
        for bad in [
            vec![],
            vec![2, 0, 0],
            acl(&[]),
            ok[..ok.len() - 1].to_vec(),
            {
                let mut v = ok.clone();
                v[0] = 1; // version
                v
            },
            acl(&[(USER_OBJ, 6, U), (GROUP_OBJ, 4, U)]), // no OTHER
            acl(&[
                (USER_OBJ, 6, U),
                (USER, 4, 1),
                (GROUP_OBJ, 4, U),
                (OTHER, 0, U),
            ]), // no MASK
            acl(&[(USER_OBJ, 8, U), (GROUP_OBJ, 4, U), (OTHER, 0, U)]), // perm
            acl(&[(GROUP_OBJ, 4, U), (USER_OBJ, 6, U), (OTHER, 0, U)]), // order
            acl(&[
                (USER_OBJ, 6, U),
                (USER, 4, 1),
                (USER, 4, 1),
                (GROUP_OBJ, 4, U),
                (MASK, 4, U),
                (OTHER, 0, U),
            ]),
            acl(&[
                (USER_OBJ, 6, U),
                (USER, 4, U),
                (GROUP_OBJ, 4, U),
                (MASK, 4, U),
                (OTHER, 0, U),
            ]),
            acl(&[
                (USER_OBJ, 6, U),
                (0x40, 4, U),
                (GROUP_OBJ, 4, U),
                (OTHER, 0, U),
            ]),
        ] {
            assert_eq!(Acl::decode(&bad), Err(libc::EINVAL), "{bad:?}");
        }
        // Random bytes never panic.
        let mut x = 0x1234_5678u32;
        for n in 0..2000 {
            let v: Vec<u8> = (0..(n % 60))
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x % 7) as u8 // small values hit valid tags and perms
                })
                .collect();
            let _ = Acl::decode(&v);
        }
    }

    #[test]
    fn mode_follows_the_acl_and_chmod_follows_the_mode() {
        let a = Acl::decode(&acl(&[
            (USER_OBJ, 6, U),
            (USER, 7, 1000),
            (GROUP_OBJ, 4, U),
            (MASK, 5, U),
            (OTHER, 1, U),
        ]))
        .unwrap();
        assert_eq!(
            a.apply_to_mode(libc::S_IFREG | libc::S_ISUID | 0o777),
            libc::S_IFREG | libc::S_ISUID | 0o651
        );
        let mut b = a.clone();
        b.chmod(0o740);
        // MASK, not GROUP_OBJ, takes the group bits; USER is untouched.
        assert_eq!(
            b.encode(),
            acl(&[
                (USER_OBJ, 7, U),
                (USER, 7, 1000),
                (GROUP_OBJ, 4, U),
                (MASK, 4, U),
                (OTHER, 0, U)
            ])
        );
        let mut m =
            Acl::decode(&acl(&[(USER_OBJ, 6, U), (GROUP_OBJ, 4, U), (OTHER, 4, U)])).unwrap();
        m.chmod(0o751);
        assert_eq!(m.apply_to_mode(0), 0o751);
    }

    #[test]
    fn inheritance_masks_by_the_requested_mode() {
        let d = Acl::decode(&acl(&[
            (USER_OBJ, 7, U),
            (USER, 6, 1000),
            (GROUP_OBJ, 5, U),
            (MASK, 7, U),
            (OTHER, 5, U),
        ]))
        .unwrap();
        // A file created 0666: no execute anywhere, the named user keeps rw
        // (only the mask limits it).
        let (a, mode) = d.inherit(libc::S_IFREG | 0o666);
        assert_eq!(mode, libc::S_IFREG | 0o664);
        assert_eq!(
            a.encode(),
            acl(&[
                (USER_OBJ, 6, U),
                (USER, 6, 1000),
                (GROUP_OBJ, 5, U),
                (MASK, 6, U),
                (OTHER, 4, U)
            ])
        );
        let (_, mode) = d.inherit(libc::S_IFDIR | 0o700);
        assert_eq!(mode, libc::S_IFDIR | 0o700);
    }
}
