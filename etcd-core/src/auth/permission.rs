//! Permissions a role grants: read, write or both, on a key, a range or a prefix.

use etcd_proto::authpb;
use etcd_proto::authpb::permission::Type;

use crate::key::{IntoBytes, KeyRange};

/// What a permission allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PermissionKind {
    /// Reads (get, watch, the reads of a transaction).
    Read,
    /// Writes (put, delete, the writes of a transaction).
    Write,
    /// Both.
    ReadWrite,
}

impl PermissionKind {
    fn to_wire(self) -> i32 {
        match self {
            Self::Read => Type::Read as i32,
            Self::Write => Type::Write as i32,
            Self::ReadWrite => Type::Readwrite as i32,
        }
    }

    fn from_wire(kind: i32) -> Self {
        match Type::try_from(kind) {
            Ok(Type::Write) => Self::Write,
            Ok(Type::Readwrite) => Self::ReadWrite,
            // READ is 0, the wire default.
            _ => Self::Read,
        }
    }
}

/// A permission on a key or a range of keys, granted to a role with
/// [`Auth::role_grant`](super::Auth::role_grant).
///
/// ```
/// use etcd_core::auth::{Permission, PermissionKind};
/// let p = Permission::read_prefix("app/");
/// assert_eq!(p.kind(), PermissionKind::Read);
/// assert_eq!(&p.range().end()[..], b"app0");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Permission {
    kind: PermissionKind,
    range: KeyRange,
}

impl Permission {
    /// A permission of `kind` over `range`.
    pub fn new(kind: PermissionKind, range: KeyRange) -> Self {
        Self { kind, range }
    }

    /// Read access to one key.
    pub fn read(key: impl IntoBytes) -> Self {
        Self::new(PermissionKind::Read, KeyRange::key(key))
    }

    /// Read access to every key starting with `prefix`.
    pub fn read_prefix(prefix: impl IntoBytes) -> Self {
        Self::new(PermissionKind::Read, KeyRange::prefix(prefix))
    }

    /// Read access to every key in `[start, end)`.
    pub fn read_range(start: impl IntoBytes, end: impl IntoBytes) -> Self {
        Self::new(PermissionKind::Read, KeyRange::range(start, end))
    }

    /// Write access to one key.
    pub fn write(key: impl IntoBytes) -> Self {
        Self::new(PermissionKind::Write, KeyRange::key(key))
    }

    /// Write access to every key starting with `prefix`.
    pub fn write_prefix(prefix: impl IntoBytes) -> Self {
        Self::new(PermissionKind::Write, KeyRange::prefix(prefix))
    }

    /// Write access to every key in `[start, end)`.
    pub fn write_range(start: impl IntoBytes, end: impl IntoBytes) -> Self {
        Self::new(PermissionKind::Write, KeyRange::range(start, end))
    }

    /// Read and write access to one key.
    pub fn readwrite(key: impl IntoBytes) -> Self {
        Self::new(PermissionKind::ReadWrite, KeyRange::key(key))
    }

    /// Read and write access to every key starting with `prefix`.
    pub fn readwrite_prefix(prefix: impl IntoBytes) -> Self {
        Self::new(PermissionKind::ReadWrite, KeyRange::prefix(prefix))
    }

    /// Read and write access to every key in `[start, end)`.
    pub fn readwrite_range(start: impl IntoBytes, end: impl IntoBytes) -> Self {
        Self::new(PermissionKind::ReadWrite, KeyRange::range(start, end))
    }

    /// What the permission allows.
    pub fn kind(&self) -> PermissionKind {
        self.kind
    }

    /// The keys it covers.
    pub fn range(&self) -> &KeyRange {
        &self.range
    }

    pub(crate) fn into_wire(self) -> authpb::Permission {
        let (key, range_end) = self.range.into_parts();
        authpb::Permission {
            perm_type: self.kind.to_wire(),
            key,
            range_end,
        }
    }
}

impl From<authpb::Permission> for Permission {
    fn from(p: authpb::Permission) -> Self {
        Self {
            kind: PermissionKind::from_wire(p.perm_type),
            range: KeyRange::range(p.key, p.range_end),
        }
    }
}

/// The keys a permission covers, for [`Auth::role_revoke`](super::Auth::role_revoke).
impl From<Permission> for KeyRange {
    fn from(p: Permission) -> Self {
        p.range
    }
}

/// The keys a permission covers, for [`Auth::role_revoke`](super::Auth::role_revoke).
impl From<&Permission> for KeyRange {
    fn from(p: &Permission) -> Self {
        p.range.clone()
    }
}
