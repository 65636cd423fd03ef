//! Keys, values and key ranges.
//!
//! Keys and values are byte strings. Anything byte-like converts into them through
//! [`IntoBytes`]: `&str`, `String`, `&[u8]`, `Vec<u8>` and [`Bytes`] (the last without a copy).
//!
//! A range is `[key, range_end)` in etcd's terms, with three special forms:
//! an empty `range_end` means the single key, a `range_end` of `"\0"` means every key from
//! `key` on, and `key = range_end = "\0"` means every key.

use bytes::Bytes;

/// Converts byte-like values into [`Bytes`], copying only when the source is borrowed.
pub trait IntoBytes {
    /// Performs the conversion.
    fn into_bytes(self) -> Bytes;
}

impl IntoBytes for Bytes {
    fn into_bytes(self) -> Bytes {
        self
    }
}
impl IntoBytes for &Bytes {
    fn into_bytes(self) -> Bytes {
        self.clone()
    }
}
impl IntoBytes for Vec<u8> {
    fn into_bytes(self) -> Bytes {
        Bytes::from(self)
    }
}
impl IntoBytes for String {
    fn into_bytes(self) -> Bytes {
        Bytes::from(self)
    }
}
impl IntoBytes for &str {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self.as_bytes())
    }
}
impl IntoBytes for &String {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self.as_bytes())
    }
}
impl IntoBytes for &[u8] {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}
impl IntoBytes for &Vec<u8> {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}
impl<const N: usize> IntoBytes for &[u8; N] {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}
impl<const N: usize> IntoBytes for [u8; N] {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(&self)
    }
}

/// The `range_end` byte string meaning "every key from `key` on".
pub const FROM_KEY: &[u8] = b"\0";

/// The `range_end` that covers every key starting with `prefix`.
///
/// The last byte below `0xff` is incremented and everything after it dropped. A prefix of
/// only `0xff` bytes (or an empty one) has no upper bound, so the result is `"\0"`: every
/// key from the prefix on.
///
/// ```
/// use etcd_core::key::prefix_end;
/// assert_eq!(&prefix_end(b"app/")[..], b"app0");
/// assert_eq!(&prefix_end(b"a\xff")[..], b"b");
/// assert_eq!(&prefix_end(b"\xff\xff")[..], b"\0");
/// ```
pub fn prefix_end(prefix: &[u8]) -> Bytes {
    match prefix.iter().rposition(|&b| b < 0xff) {
        Some(i) => {
            let mut end = prefix[..=i].to_vec();
            end[i] += 1;
            Bytes::from(end)
        }
        None => Bytes::from_static(FROM_KEY),
    }
}

/// A key or a range of keys, as etcd's requests take them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KeyRange {
    key: Bytes,
    range_end: Bytes,
}

impl KeyRange {
    /// One key.
    pub fn key(key: impl IntoBytes) -> Self {
        Self {
            key: key.into_bytes(),
            range_end: Bytes::new(),
        }
    }

    /// Every key in `[start, end)`.
    pub fn range(start: impl IntoBytes, end: impl IntoBytes) -> Self {
        Self {
            key: start.into_bytes(),
            range_end: end.into_bytes(),
        }
    }

    /// Every key that starts with `prefix`; an empty prefix means every key.
    pub fn prefix(prefix: impl IntoBytes) -> Self {
        let mut range = Self::key(prefix);
        range.make_prefix();
        range
    }

    /// Every key greater than or equal to `start`.
    pub fn from_key(start: impl IntoBytes) -> Self {
        let mut range = Self::key(start);
        range.make_from_key();
        range
    }

    /// Every key in the store.
    pub fn all() -> Self {
        Self {
            key: Bytes::from_static(FROM_KEY),
            range_end: Bytes::from_static(FROM_KEY),
        }
    }

    /// The first key of the range (the key itself for a single key).
    pub fn start(&self) -> &Bytes {
        &self.key
    }

    /// The exclusive end of the range; empty for a single key.
    pub fn end(&self) -> &Bytes {
        &self.range_end
    }

    /// True when this addresses exactly one key.
    pub fn is_single_key(&self) -> bool {
        self.range_end.is_empty()
    }

    /// Splits into etcd's `(key, range_end)` pair.
    pub fn into_parts(self) -> (Bytes, Bytes) {
        (self.key, self.range_end)
    }

    /// Turns the current key into a prefix.
    pub(crate) fn make_prefix(&mut self) {
        if self.key.is_empty() {
            *self = Self::all();
        } else {
            self.range_end = prefix_end(&self.key);
        }
    }

    /// Turns the current key into a "from this key on" range.
    pub(crate) fn make_from_key(&mut self) {
        if self.key.is_empty() {
            self.key = Bytes::from_static(FROM_KEY);
        }
        self.range_end = Bytes::from_static(FROM_KEY);
    }

    pub(crate) fn set_end(&mut self, end: Bytes) {
        self.range_end = end;
    }

    /// Whether `key` falls inside this range, with etcd's special forms.
    pub fn contains(&self, key: &[u8]) -> bool {
        if self.range_end.is_empty() {
            return key == &self.key[..];
        }
        if &self.range_end[..] == FROM_KEY {
            return key >= &self.key[..];
        }
        key >= &self.key[..] && key < &self.range_end[..]
    }

    /// Whether two ranges share at least one key.
    pub fn overlaps(&self, other: &KeyRange) -> bool {
        fn bounds(r: &KeyRange) -> (&[u8], Option<Vec<u8>>) {
            // Inclusive start, exclusive end; None = unbounded.
            if r.range_end.is_empty() {
                let mut end = r.key.to_vec();
                end.push(0);
                (&r.key, Some(end))
            } else if &r.range_end[..] == FROM_KEY {
                (&r.key, None)
            } else {
                (&r.key, Some(r.range_end.to_vec()))
            }
        }
        let (a_start, a_end) = bounds(self);
        let (b_start, b_end) = bounds(other);
        let a_before_b_ends = b_end.as_deref().is_none_or(|end| a_start < end);
        let b_before_a_ends = a_end.as_deref().is_none_or(|end| b_start < end);
        a_before_b_ends && b_before_a_ends
    }
}

/// Adds `.prefix()`, `.from_key()` and `.range_end(..)` to a builder that holds its keys in a
/// `range: KeyRange` field; `$verb` ("Reads", "Deletes", ...) starts each method's doc.
macro_rules! range_methods {
    ($verb:literal) => {
        #[doc = concat!($verb, " every key that starts with the given key (every key, when it is empty).")]
        pub fn prefix(mut self) -> Self {
            self.range.make_prefix();
            self
        }

        #[doc = concat!($verb, " every key from the given key on.")]
        #[allow(clippy::wrong_self_convention)] // etcd calls this option "from key"
        pub fn from_key(mut self) -> Self {
            self.range.make_from_key();
            self
        }

        #[doc = concat!($verb, " the keys in `[key, end)`.")]
        pub fn range_end(mut self, end: impl $crate::key::IntoBytes) -> Self {
            self.range.set_end($crate::key::IntoBytes::into_bytes(end));
            self
        }
    };
}
pub(crate) use range_methods;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(&prefix_end(b"a")[..], b"b");
        assert_eq!(&prefix_end(b"a/b")[..], b"a/c");
        assert_eq!(&prefix_end(b"a\xff\xff")[..], b"b");
        assert_eq!(&prefix_end(b"\xff")[..], b"\0");
        assert_eq!(&prefix_end(b"")[..], b"\0");
    }

    #[test]
    fn special_ranges() {
        assert_eq!(
            KeyRange::prefix("").into_parts(),
            KeyRange::all().into_parts()
        );
        let (k, e) = KeyRange::from_key("m").into_parts();
        assert_eq!((&k[..], &e[..]), (&b"m"[..], &b"\0"[..]));
        let (k, e) = KeyRange::from_key("").into_parts();
        assert_eq!((&k[..], &e[..]), (&b"\0"[..], &b"\0"[..]));
    }

    #[test]
    fn containment_and_overlap() {
        let p = KeyRange::prefix("a/");
        assert!(p.contains(b"a/x"));
        assert!(!p.contains(b"a0"));
        assert!(KeyRange::from_key("m").contains(b"zzz"));
        assert!(KeyRange::all().contains(b"\x01"));
        assert!(p.overlaps(&KeyRange::key("a/x")));
        assert!(!p.overlaps(&KeyRange::key("b")));
        assert!(KeyRange::key("b").overlaps(&KeyRange::range("a", "c")));
        assert!(!KeyRange::key("c").overlaps(&KeyRange::range("a", "c")));
        assert!(KeyRange::from_key("b").overlaps(&KeyRange::key("zz")));
        assert!(!KeyRange::key("a").overlaps(&KeyRange::key("a\0")));
    }

    #[test]
    fn conversions_copy_only_borrowed_input() {
        let b = Bytes::from_static(b"static");
        assert_eq!(b.clone().into_bytes().as_ptr(), b.as_ptr());
        assert_eq!(&"str".into_bytes()[..], b"str");
        assert_eq!(&vec![1u8, 2].into_bytes()[..], &[1, 2]);
    }
}
