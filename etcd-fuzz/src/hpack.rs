//! Random header lists, and their header blocks as an independent HPACK encoder
//! (`httlib-hpack`) writes them: literal or indexed, Huffman-coded or not, indexed or not,
//! with dynamic table size updates.

use crate::Rng;

/// A header field: name and value.
pub type Field = (Vec<u8>, Vec<u8>);

/// The dynamic table size both sides start with (SETTINGS_HEADER_TABLE_SIZE's default).
pub const TABLE_SIZE: usize = 4096;

/// Names a gRPC response carries, and names of the static table.
const COMMON_NAMES: &[&str] = &[
    "content-type",
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "date",
    "server",
    "content-length",
    "set-cookie",
    "cache-control",
    "x-envoy-upstream-service-time",
    "trailer",
    "te",
];

/// Values often seen, and values at the edges of what is allowed.
const COMMON_VALUES: &[&str] = &[
    "",
    "0",
    "14",
    "application/grpc",
    "application/grpc+proto",
    "text/html; charset=utf-8",
    "gzip, deflate",
    " leading and trailing spaces ",
    "tab\there",
    "%E2%9C%93 percent-encoded",
];

/// Characters allowed in a header name besides lowercase letters and digits.
const NAME_SYMBOLS: &[u8] = b"-_.!#$%&'*+^`|~";

/// A valid (lowercase) header name.
pub fn name(rng: &mut Rng) -> Vec<u8> {
    if rng.bool() {
        return rng.pick(COMMON_NAMES).as_bytes().to_vec();
    }
    let len = rng.between(1, 24);
    (0..len)
        .map(|_| match rng.below(8) {
            0 => *rng.pick(NAME_SYMBOLS),
            1 => b'0' + rng.below(10) as u8,
            _ => b'a' + rng.below(26) as u8,
        })
        .collect()
}

/// A valid header value: visible ASCII, spaces, tabs and bytes above 0x7f.
pub fn value(rng: &mut Rng) -> Vec<u8> {
    if rng.bool() {
        return rng.pick(COMMON_VALUES).as_bytes().to_vec();
    }
    let max = if rng.one_in(16) { 600 } else { 40 };
    let len = rng.size(max);
    (0..len)
        .map(|_| match rng.below(16) {
            0 => b'\t',
            1 => 0x80 + rng.below(0x80) as u8,
            _ => 0x20 + rng.below(0x5f) as u8,
        })
        .collect()
}

/// A valid response header list: maybe a `:status` first, then up to `max_fields`
/// regular fields, names repeating now and then.
pub fn header_list(rng: &mut Rng, max_fields: usize) -> Vec<Field> {
    let mut fields = Vec::new();
    if rng.below(4) != 0 {
        let status = if rng.bool() {
            200
        } else {
            rng.between(100, 999)
        };
        fields.push((b":status".to_vec(), status.to_string().into_bytes()));
    }
    for _ in 0..rng.size(max_fields) {
        let name = match fields.len() {
            n if n > 0 && rng.one_in(4) => fields[rng.below(n)].0.clone(),
            _ => name(rng),
        };
        if name.starts_with(b":") {
            continue;
        }
        fields.push((name, value(rng)));
    }
    fields
}

/// `httlib-hpack`'s encoder, choosing a representation per field at random; it keeps its
/// dynamic table between blocks, as a connection's encoder does.
#[derive(Debug)]
pub struct BlockEncoder {
    inner: httlib_hpack::Encoder<'static>,
}

impl Default for BlockEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl BlockEncoder {
    /// An encoder with a 4096-byte dynamic table.
    pub fn new() -> Self {
        Self {
            inner: httlib_hpack::Encoder::with_dynamic_size(TABLE_SIZE as u32),
        }
    }

    /// The header block of `fields`, now and then starting with dynamic table size updates
    /// (never above [`TABLE_SIZE`]).
    pub fn encode(&mut self, rng: &mut Rng, fields: &[Field]) -> Vec<u8> {
        use httlib_hpack::Encoder as E;
        let mut out = Vec::new();
        if !fields.is_empty() && rng.one_in(6) {
            for _ in 0..rng.between(1, 2) {
                let size = match rng.below(3) {
                    0 => 0,
                    1 => TABLE_SIZE,
                    _ => rng.below(TABLE_SIZE + 1),
                };
                self.inner
                    .update_max_dynamic_size(size as u32, &mut out)
                    .expect("a size update within the limit encodes");
            }
        }
        for (name, value) in fields {
            let mut flags = 0;
            if rng.bool() {
                flags |= E::HUFFMAN_NAME;
            }
            if rng.bool() {
                flags |= E::HUFFMAN_VALUE;
            }
            flags |= match rng.below(4) {
                0 => 0,
                1 => E::NEVER_INDEXED,
                _ => E::WITH_INDEXING,
            };
            if rng.below(3) != 0 {
                flags |= E::BEST_FORMAT;
            }
            self.inner
                .encode((name.clone(), value.clone(), flags), &mut out)
                .expect("a valid field encodes");
        }
        out
    }
}
