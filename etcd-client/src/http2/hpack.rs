//! HPACK header compression (RFC 7541): a full decoder for response header
//! blocks and a minimal encoder for gRPC request header blocks.

use std::collections::VecDeque;
use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::huffman;

/// Dynamic table limit we advertise (the SETTINGS_HEADER_TABLE_SIZE default).
const DEFAULT_TABLE_SIZE: usize = 4096;
/// Per-entry overhead counted in the dynamic table size (RFC 7541, 4.1).
const ENTRY_OVERHEAD: usize = 32;
/// Largest integer we accept in a header block.
const MAX_INT: u64 = 1 << 28;
/// Number of entries in the static table.
const STATIC_LEN: usize = 61;

/// The static table (RFC 7541, Appendix A), index 1 first.
#[rustfmt::skip]
const STATIC: [(&str, &str); STATIC_LEN] = [
    (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"),
    (":path", "/index.html"), (":scheme", "http"), (":scheme", "https"), (":status", "200"),
    (":status", "204"), (":status", "206"), (":status", "304"), (":status", "400"),
    (":status", "404"), (":status", "500"), ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""),
    ("accept", ""), ("access-control-allow-origin", ""), ("age", ""), ("allow", ""),
    ("authorization", ""), ("cache-control", ""), ("content-disposition", ""),
    ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
    ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""),
    ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""),
    ("if-match", ""), ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""),
    ("if-unmodified-since", ""), ("last-modified", ""), ("link", ""), ("location", ""),
    ("max-forwards", ""), ("proxy-authenticate", ""), ("proxy-authorization", ""),
    ("range", ""), ("referer", ""), ("refresh", ""), ("retry-after", ""), ("server", ""),
    ("set-cookie", ""), ("strict-transport-security", ""), ("transfer-encoding", ""),
    ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
];

/// A decoded header block: a response's head or its trailers.
#[derive(Debug, Default)]
pub(crate) struct Block {
    /// The `:status` pseudo-header, if the block had one.
    pub(crate) status: Option<StatusCode>,
    /// The regular header fields, in order, repeated names kept.
    pub(crate) fields: HeaderMap,
    /// Why the block is not a valid response header list, though it decoded (HPACK's
    /// state stays in step; only its stream fails): past the size limit, or a malformed
    /// use of pseudo-headers.
    pub(crate) malformed: Option<&'static str>,
    /// Its decoded size as RFC 9113 counts it (names, values and 32 bytes per field).
    list_size: usize,
    /// Fields are no longer kept: the block went past a limit.
    over_limit: bool,
}

/// Why a header block could not be decoded (connection error COMPRESSION_ERROR).
#[derive(Debug, thiserror::Error)]
pub(crate) enum HpackError {
    /// The block ended in the middle of a representation.
    #[error("the header block ends in the middle of a field")]
    Truncated,
    /// An integer was too large or used too many continuation bytes.
    #[error("the header block holds an integer that is too large")]
    IntegerOverflow,
    /// A field referred to index 0.
    #[error("the header block refers to table index 0, which does not exist")]
    ZeroIndex,
    /// A field referred to an index past the static and dynamic tables.
    #[error("the header block refers to table index {0}, past the end of the tables")]
    IndexOutOfRange(usize),
    /// A dynamic table size update asked for more than our limit.
    #[error("the header block asks for a {0}-byte dynamic table, above our limit of 4096")]
    TableSizeTooLarge(usize),
    /// A dynamic table size update came after a header field.
    #[error("the header block has a dynamic table size update after a header field")]
    LateTableSizeUpdate,
    /// A Huffman-coded string was malformed.
    #[error("the header block has a bad Huffman-coded string: {0}")]
    Huffman(#[from] huffman::HuffmanError),
    /// A header name was empty, not lowercase, or had forbidden characters.
    #[error("the header block has an invalid or non-lowercase header name")]
    InvalidName,
    /// A header value had forbidden characters.
    #[error("the header block has a header value with forbidden characters")]
    InvalidValue,
    /// The `:status` value was not a three-digit status code.
    #[error("the header block has a :status that is not a three-digit code")]
    InvalidStatus,
    /// The block carried `:status` twice.
    #[error("the header block has more than one :status")]
    DuplicateStatus,
}

/// A field name, already parsed.
#[derive(Clone, Debug)]
enum Name {
    /// The `:status` pseudo-header.
    Status,
    /// Any other pseudo-header (raw name, leading colon included).
    Pseudo(Bytes),
    /// A regular header.
    Regular(HeaderName),
}

impl Name {
    /// Parses a name received on the wire.
    fn parse(raw: &[u8]) -> Result<Self, HpackError> {
        match raw {
            b":status" => Ok(Self::Status),
            [b':', rest @ ..] => match HeaderName::from_lowercase(rest) {
                Ok(_) => Ok(Self::Pseudo(Bytes::copy_from_slice(raw))),
                Err(_) => Err(HpackError::InvalidName),
            },
            _ => HeaderName::from_lowercase(raw)
                .map(Self::Regular)
                .map_err(|_| HpackError::InvalidName),
        }
    }

    /// Length of the name in bytes, as counted by the table size rule.
    fn len(&self) -> usize {
        match self {
            Self::Status => ":status".len(),
            Self::Pseudo(raw) => raw.len(),
            Self::Regular(name) => name.as_str().len(),
        }
    }
}

/// A table entry: parsed name and value.
#[derive(Clone, Debug)]
struct Entry {
    /// The field name.
    name: Name,
    /// The field value.
    value: HeaderValue,
}

impl Entry {
    /// Size of the entry for the dynamic table limit.
    fn size(&self) -> usize {
        self.name.len() + self.value.len() + ENTRY_OVERHEAD
    }
}

/// The static table as parsed entries, built on first use.
fn static_table() -> &'static [Entry] {
    static TABLE: OnceLock<Vec<Entry>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let entry = |&(name, value): &(&'static str, &'static str)| Entry {
            name: match name {
                ":status" => Name::Status,
                _ if name.starts_with(':') => Name::Pseudo(Bytes::from_static(name.as_bytes())),
                _ => Name::Regular(HeaderName::from_static(name)),
            },
            value: HeaderValue::from_static(value),
        };
        STATIC.iter().map(entry).collect()
    })
}

/// Decodes the header blocks of one connection (it keeps the dynamic table between blocks).
pub(crate) struct Decoder {
    /// Dynamic table, newest entry first.
    table: VecDeque<Entry>,
    /// Current size of the dynamic table.
    size: usize,
    /// Maximum size chosen by the peer's encoder (size updates).
    max_size: usize,
    /// Upper bound for `max_size` (our SETTINGS_HEADER_TABLE_SIZE).
    limit: usize,
    /// Reusable buffer for Huffman-coded names.
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("entries", &self.table.len())
            .field("size", &self.size)
            .field("max_size", &self.max_size)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// A decoder with the default dynamic table limit of 4096 bytes (SETTINGS_HEADER_TABLE_SIZE we never change).
    pub(crate) fn new() -> Self {
        Self::with_limit(DEFAULT_TABLE_SIZE)
    }

    /// A decoder whose table limit and initial size are `limit` bytes.
    fn with_limit(limit: usize) -> Self {
        Self {
            table: VecDeque::new(),
            size: 0,
            max_size: limit,
            limit,
            scratch: Vec::new(),
        }
    }

    /// Decodes one complete header block (the concatenated HEADERS + CONTINUATION payloads).
    /// Fields past `max_list_size` decoded bytes are not kept: the block is then marked
    /// malformed, and decoding goes on only to keep the dynamic table in step.
    pub(crate) fn decode(
        &mut self,
        block: &[u8],
        max_list_size: usize,
    ) -> Result<Block, HpackError> {
        let mut out = Block::default();
        let emit = |out: &mut Block, name: &Name, value: &HeaderValue| {
            emit(out, name, value, max_list_size)
        };
        let mut src = block;
        let mut fields_seen = false;
        while let Some(&first) = src.first() {
            if first & 0x80 != 0 {
                // Indexed field.
                let index = read_int(&mut src, 7)?;
                let entry = self.get(index)?;
                emit(&mut out, &entry.name, &entry.value)?;
            } else if first & 0x40 != 0 {
                // Literal with incremental indexing.
                let entry = self.read_literal(&mut src, 6)?;
                emit(&mut out, &entry.name, &entry.value)?;
                self.insert(entry);
            } else if first & 0x20 != 0 {
                // Dynamic table size update: only before the first field.
                if fields_seen {
                    return Err(HpackError::LateTableSizeUpdate);
                }
                let size = read_int(&mut src, 5)?;
                if size > self.limit {
                    return Err(HpackError::TableSizeTooLarge(size));
                }
                self.max_size = size;
                self.evict(0);
                continue;
            } else {
                // Literal without indexing (0000) or never indexed (0001).
                let mut entry = self.read_literal(&mut src, 4)?;
                entry.value.set_sensitive(first & 0x10 != 0);
                emit(&mut out, &entry.name, &entry.value)?;
            }
            fields_seen = true;
        }
        Ok(out)
    }

    /// Looks up `index` in the static then the dynamic table.
    fn get(&self, index: usize) -> Result<&Entry, HpackError> {
        match index {
            0 => Err(HpackError::ZeroIndex),
            1..=STATIC_LEN => Ok(&static_table()[index - 1]),
            _ => self
                .table
                .get(index - STATIC_LEN - 1)
                .ok_or(HpackError::IndexOutOfRange(index)),
        }
    }

    /// Reads a literal field whose name index has a `prefix`-bit prefix.
    fn read_literal(&mut self, src: &mut &[u8], prefix: u8) -> Result<Entry, HpackError> {
        let index = read_int(src, prefix)?;
        let name = if index == 0 {
            let (huffman, raw) = read_string(src)?;
            if huffman {
                self.scratch.clear();
                huffman::decode(raw, &mut self.scratch)?;
                Name::parse(&self.scratch)?
            } else {
                Name::parse(raw)?
            }
        } else {
            self.get(index)?.name.clone()
        };
        let (huffman, raw) = read_string(src)?;
        let bytes = if huffman {
            let mut buf = Vec::new();
            huffman::decode(raw, &mut buf)?;
            Bytes::from(buf)
        } else {
            Bytes::copy_from_slice(raw)
        };
        let value = HeaderValue::from_maybe_shared(bytes).map_err(|_| HpackError::InvalidValue)?;
        Ok(Entry { name, value })
    }

    /// Adds an entry at the front of the dynamic table, evicting as needed.
    fn insert(&mut self, entry: Entry) {
        let size = entry.size();
        if size > self.max_size {
            self.table.clear();
            self.size = 0;
            return;
        }
        self.evict(size);
        self.size += size;
        self.table.push_front(entry);
    }

    /// Evicts the oldest entries until `extra` more bytes fit under `max_size`.
    fn evict(&mut self, extra: usize) {
        while self.size + extra > self.max_size {
            match self.table.pop_back() {
                Some(old) => self.size -= old.size(),
                None => break,
            }
        }
    }
}

impl Block {
    /// Stops keeping fields: the block went past a limit.
    fn give_up(&mut self, why: &'static str) {
        self.malformed = Some(why);
        self.over_limit = true;
        self.fields = HeaderMap::new();
    }
}

/// Adds a decoded field to the output block, unless the block is already past
/// `max_list_size` or malformed.
fn emit(
    out: &mut Block,
    name: &Name,
    value: &HeaderValue,
    max_list_size: usize,
) -> Result<(), HpackError> {
    if out.over_limit {
        return Ok(());
    }
    out.list_size = out
        .list_size
        .saturating_add(name.len() + value.len() + ENTRY_OVERHEAD);
    if out.list_size > max_list_size {
        out.give_up("the response's header list is over the size we allow");
        return Ok(());
    }
    match name {
        Name::Status => {
            if out.status.is_some() {
                return Err(HpackError::DuplicateStatus);
            }
            if !out.fields.is_empty() {
                out.malformed = Some("the response has :status after a regular header");
                return Ok(());
            }
            let status =
                StatusCode::from_bytes(value.as_bytes()).map_err(|_| HpackError::InvalidStatus)?;
            out.status = Some(status);
        }
        Name::Pseudo(_) => {
            out.malformed = Some("the response has a pseudo-header other than :status");
        }
        Name::Regular(name) => {
            if out.fields.try_append(name.clone(), value.clone()).is_err() {
                out.give_up("the response has more header fields than we allow");
            }
        }
    }
    Ok(())
}

/// Reads a prefix integer (RFC 7541, 5.1) whose first byte has `prefix` low bits.
fn read_int(src: &mut &[u8], prefix: u8) -> Result<usize, HpackError> {
    let (&first, rest) = src.split_first().ok_or(HpackError::Truncated)?;
    *src = rest;
    let mask = (1u8 << prefix) - 1;
    let mut value = u64::from(first & mask);
    if value == u64::from(mask) {
        let mut shift = 0;
        loop {
            let (&byte, rest) = src.split_first().ok_or(HpackError::Truncated)?;
            *src = rest;
            value += u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 28 {
                return Err(HpackError::IntegerOverflow);
            }
        }
        if value > MAX_INT {
            return Err(HpackError::IntegerOverflow);
        }
    }
    usize::try_from(value).map_err(|_| HpackError::IntegerOverflow)
}

/// Reads a string literal: whether it is Huffman-coded, and its raw bytes.
fn read_string<'a>(src: &mut &'a [u8]) -> Result<(bool, &'a [u8]), HpackError> {
    let huffman = src.first().is_some_and(|b| b & 0x80 != 0);
    let len = read_int(src, 7)?;
    if len > src.len() {
        return Err(HpackError::Truncated);
    }
    let (raw, rest) = src.split_at(len);
    *src = rest;
    Ok((huffman, raw))
}

/// Appends the header block of a gRPC request to `dst`: `:method POST`, `:scheme http`, `:path path`, `:authority authority`, then every header of `headers` in order.
pub(crate) fn encode_request(dst: &mut BytesMut, path: &str, authority: &str, headers: &HeaderMap) {
    let extra: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 8)
        .sum();
    dst.reserve(16 + path.len() + authority.len() + extra);
    dst.put_u8(0x83); // :method POST
    dst.put_u8(0x86); // :scheme http
    write_int(dst, 4, 4, 0x00); // :path, literal without indexing
    write_string(dst, path.as_bytes());
    write_int(dst, 1, 4, 0x00); // :authority, literal without indexing
    write_string(dst, authority.as_bytes());
    for (name, value) in headers {
        let name = name.as_str();
        if matches!(
            name,
            "connection"
                | "keep-alive"
                | "proxy-connection"
                | "transfer-encoding"
                | "upgrade"
                | "host"
        ) {
            continue;
        }
        // Credentials (etcd's auth token travels as `token`) are never to be indexed.
        let flags = if matches!(name, "authorization" | "token") {
            0x10
        } else {
            0x00
        };
        match static_name_index(name) {
            Some(index) => write_int(dst, index, 4, flags),
            None => {
                dst.put_u8(flags);
                write_string(dst, name.as_bytes());
            }
        }
        write_string(dst, value.as_bytes());
    }
}

/// Index of a regular header name in the static table, if it is there.
#[rustfmt::skip]
fn static_name_index(name: &str) -> Option<usize> {
    let index = match name {
        "accept-charset" => 15, "accept-encoding" => 16, "accept-language" => 17,
        "accept-ranges" => 18, "accept" => 19, "access-control-allow-origin" => 20, "age" => 21,
        "allow" => 22, "authorization" => 23, "cache-control" => 24,
        "content-disposition" => 25, "content-encoding" => 26, "content-language" => 27,
        "content-length" => 28, "content-location" => 29, "content-range" => 30,
        "content-type" => 31, "cookie" => 32, "date" => 33, "etag" => 34, "expect" => 35,
        "expires" => 36, "from" => 37, "host" => 38, "if-match" => 39,
        "if-modified-since" => 40, "if-none-match" => 41, "if-range" => 42,
        "if-unmodified-since" => 43, "last-modified" => 44, "link" => 45, "location" => 46,
        "max-forwards" => 47, "proxy-authenticate" => 48, "proxy-authorization" => 49,
        "range" => 50, "referer" => 51, "refresh" => 52, "retry-after" => 53, "server" => 54,
        "set-cookie" => 55, "strict-transport-security" => 56, "transfer-encoding" => 57,
        "user-agent" => 58, "vary" => 59, "via" => 60, "www-authenticate" => 61,
        _ => return None,
    };
    Some(index)
}

/// Writes a prefix integer with `prefix` low bits, `flags` in the high bits.
fn write_int(dst: &mut BytesMut, mut value: usize, prefix: u8, flags: u8) {
    let max = (1usize << prefix) - 1;
    if value < max {
        dst.put_u8(flags | value as u8);
        return;
    }
    dst.put_u8(flags | max as u8);
    value -= max;
    while value >= 0x80 {
        dst.put_u8(0x80 | (value & 0x7f) as u8);
        value >>= 7;
    }
    dst.put_u8(value as u8);
}

/// Writes a raw (not Huffman-coded) string literal.
fn write_string(dst: &mut BytesMut, raw: &[u8]) {
    write_int(dst, raw.len(), 7, 0x00);
    dst.put_slice(raw);
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Decoder {
        /// Decodes a block without a header-list limit.
        fn decode_all(&mut self, block: &[u8]) -> Result<Block, HpackError> {
            self.decode(block, usize::MAX)
        }

        /// A decoder with a smaller table, for the RFC examples that use 256 bytes.
        fn with_max_size(n: usize) -> Self {
            Self::with_limit(n)
        }

        /// The dynamic table as (name, value) strings, newest first.
        fn entries(&self) -> Vec<(String, String)> {
            let name = |n: &Name| match n {
                Name::Status => ":status".to_owned(),
                Name::Pseudo(raw) => String::from_utf8_lossy(raw).into_owned(),
                Name::Regular(h) => h.as_str().to_owned(),
            };
            let value = |v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
            self.table
                .iter()
                .map(|e| (name(&e.name), value(&e.value)))
                .collect()
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        let nibble = |c: u8| (c as char).to_digit(16).unwrap() as u8;
        digits
            .chunks(2)
            .map(|p| (nibble(p[0]) << 4) | nibble(p[1]))
            .collect()
    }

    fn fields(block: &Block) -> Vec<(&str, &str)> {
        let f = &block.fields;
        f.iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|&(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn c2_single_fields() {
        let mut d = Decoder::new();
        let b = d
            .decode_all(&hex(
                "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
            ))
            .unwrap();
        assert_eq!(fields(&b), [("custom-key", "custom-header")]);
        assert_eq!(
            (d.size, d.entries()),
            (55, pairs(&[("custom-key", "custom-header")]))
        );

        let mut d = Decoder::new();
        let b = d
            .decode_all(&hex("040c 2f73 616d 706c 652f 7061 7468"))
            .unwrap();
        assert!(b.fields.is_empty() && b.status.is_none() && d.table.is_empty());

        let b = d
            .decode_all(&hex("1008 7061 7373 776f 7264 0673 6563 7265 74"))
            .unwrap();
        assert_eq!(fields(&b), [("password", "secret")]);
        assert!(b.fields["password"].is_sensitive() && d.table.is_empty());

        let b = d.decode_all(&hex("82")).unwrap();
        assert!(b.fields.is_empty() && d.table.is_empty());
    }

    /// Runs three request blocks of C.3 / C.4 through one decoder.
    fn requests(blocks: [&str; 3]) {
        let mut d = Decoder::new();
        let b = d.decode_all(&hex(blocks[0])).unwrap();
        assert!(b.fields.is_empty());
        assert_eq!(
            (d.size, d.entries()),
            (57, pairs(&[(":authority", "www.example.com")]))
        );

        let b = d.decode_all(&hex(blocks[1])).unwrap();
        assert_eq!(fields(&b), [("cache-control", "no-cache")]);
        let want = [
            ("cache-control", "no-cache"),
            (":authority", "www.example.com"),
        ];
        assert_eq!((d.size, d.entries()), (110, pairs(&want)));

        let b = d.decode_all(&hex(blocks[2])).unwrap();
        assert_eq!(fields(&b), [("custom-key", "custom-value")]);
        let want = [
            ("custom-key", "custom-value"),
            ("cache-control", "no-cache"),
            (":authority", "www.example.com"),
        ];
        assert_eq!((d.size, d.entries()), (164, pairs(&want)));
    }

    #[test]
    fn c3_requests_without_huffman() {
        requests([
            "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
            "8286 84be 5808 6e6f 2d63 6163 6865",
            "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
        ]);
    }

    #[test]
    fn c4_requests_with_huffman() {
        requests([
            "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
            "8286 84be 5886 a8eb 1064 9cbf",
            "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
        ]);
    }

    /// Runs three response blocks of C.5 / C.6 through one 256-byte decoder.
    fn responses(blocks: [&str; 3]) {
        const DATE1: &str = "Mon, 21 Oct 2013 20:13:21 GMT";
        const DATE2: &str = "Mon, 21 Oct 2013 20:13:22 GMT";
        const LOC: &str = "https://www.example.com";
        const COOKIE: &str = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
        let mut d = Decoder::with_max_size(256);

        let b = d.decode_all(&hex(blocks[0])).unwrap();
        assert_eq!(b.status, Some(StatusCode::FOUND));
        let want = [
            ("cache-control", "private"),
            ("date", DATE1),
            ("location", LOC),
        ];
        assert_eq!(fields(&b), want);
        let table = [
            ("location", LOC),
            ("date", DATE1),
            ("cache-control", "private"),
            (":status", "302"),
        ];
        assert_eq!((d.size, d.entries()), (222, pairs(&table)));

        let b = d.decode_all(&hex(blocks[1])).unwrap();
        assert_eq!(b.status, Some(StatusCode::TEMPORARY_REDIRECT));
        assert_eq!(fields(&b), want);
        let table = [
            (":status", "307"),
            ("location", LOC),
            ("date", DATE1),
            ("cache-control", "private"),
        ];
        assert_eq!((d.size, d.entries()), (222, pairs(&table)));

        let b = d.decode_all(&hex(blocks[2])).unwrap();
        assert_eq!(b.status, Some(StatusCode::OK));
        let want = [
            ("cache-control", "private"),
            ("date", DATE2),
            ("location", LOC),
            ("content-encoding", "gzip"),
            ("set-cookie", COOKIE),
        ];
        assert_eq!(fields(&b), want);
        let table = [
            ("set-cookie", COOKIE),
            ("content-encoding", "gzip"),
            ("date", DATE2),
        ];
        assert_eq!((d.size, d.entries()), (215, pairs(&table)));
    }

    #[test]
    fn c5_responses_without_huffman() {
        responses([
            "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 \
             2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 \
             6c65 2e63 6f6d",
            "4803 3330 37c1 c0bf",
            "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d \
             54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 \
             5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e \
             3d31",
        ]);
    }

    #[test]
    fn c6_responses_with_huffman() {
        responses([
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 \
             2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
            "4883 640e ffc1 c0bf",
            "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab \
             77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f \
             9587 3160 65c0 03ed 4ee5 b106 3d50 07",
        ]);
    }

    #[test]
    fn request_round_trip() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        headers.insert("te", HeaderValue::from_static("trailers"));
        headers.insert("authorization", HeaderValue::from_static("secret-token"));
        headers.append("x-custom", HeaderValue::from_static("one"));
        headers.append("x-custom", HeaderValue::from_static("two"));
        headers.insert("connection", HeaderValue::from_static("close"));
        headers.insert("host", HeaderValue::from_static("elsewhere"));
        let long_path = format!("/etcdserverpb.KV/{}", "r".repeat(300));
        let mut buf = BytesMut::new();
        encode_request(&mut buf, &long_path, "127.0.0.1:2379", &headers);
        assert_eq!(&buf[..3], [0x83, 0x86, 0x04]);

        let mut d = Decoder::new();
        let block = d.decode_all(&buf).unwrap();
        let want = [
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("authorization", "secret-token"),
            ("x-custom", "one"),
            ("x-custom", "two"),
        ];
        assert_eq!(fields(&block), want);
        assert!(block.fields["authorization"].is_sensitive());
        assert!(d.table.is_empty(), "the encoder must not index anything");
        // The path length needs a three-byte prefix integer.
        let len = long_path.len() - 127;
        assert_eq!(
            &buf[3..6],
            [0x7f, 0x80 | (len & 0x7f) as u8, (len >> 7) as u8]
        );
        // authorization: never indexed (0x10), name index 23 = 15 + 8, value length 12.
        assert!(buf.windows(3).any(|w| w == [0x1f, 8, 12]));
    }

    #[test]
    fn static_names_agree_with_table() {
        for &(name, _) in &STATIC {
            let first = STATIC.iter().position(|&(n, _)| n == name).unwrap() + 1;
            let want = (!name.starts_with(':')).then_some(first);
            assert_eq!(static_name_index(name), want, "{name}");
        }
    }

    #[test]
    fn bad_blocks_are_errors() {
        let err = |s: &str| Decoder::new().decode_all(&hex(s)).unwrap_err();
        assert!(matches!(err("80"), HpackError::ZeroIndex));
        assert!(matches!(err("be"), HpackError::IndexOutOfRange(62)));
        assert!(matches!(err("40 00 00"), HpackError::InvalidName));
        assert!(matches!(
            err("3fe2 1f"),
            HpackError::TableSizeTooLarge(4097)
        ));
        assert!(matches!(err("82 20"), HpackError::LateTableSizeUpdate));
        assert!(matches!(
            err("ff ff ff ff ff ff 01"),
            HpackError::IntegerOverflow
        ));
        assert!(matches!(
            err("ff ff ff ff ff 7f"),
            HpackError::IntegerOverflow
        ));
        assert!(matches!(err("0f 2d 03 31 32"), HpackError::Truncated));
        assert!(matches!(err("0f 2d"), HpackError::Truncated));
        assert!(matches!(err("ff"), HpackError::Truncated));
        assert!(matches!(err("00 01 41 00"), HpackError::InvalidName));
        assert!(matches!(err("00 01 61 01 0a"), HpackError::InvalidValue));
        assert!(matches!(err("08 02 32 30"), HpackError::InvalidStatus));
        assert!(matches!(err("88 89"), HpackError::DuplicateStatus));
        assert!(matches!(err("00 81 ff 00"), HpackError::Huffman(_)));
        // Every prefix of a valid block fails cleanly (or decodes) without panicking.
        let full = hex("4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81");
        for end in 0..full.len() {
            let _ = Decoder::new().decode_all(&full[..end]);
        }
    }

    #[test]
    fn size_update_and_oversized_entry() {
        let mut d = Decoder::new();
        d.decode_all(&hex(
            "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
        ))
        .unwrap();
        assert_eq!(d.size, 55);
        // Size update to 0 empties the table, then back to 4096 (3fe1 1f).
        d.decode_all(&hex("20 3fe1 1f")).unwrap();
        assert!(d.table.is_empty() && d.size == 0 && d.max_size == 4096);
        // An entry larger than the table empties it.
        let mut d = Decoder::with_max_size(70);
        d.decode_all(&hex(
            "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
        ))
        .unwrap();
        assert_eq!(d.size, 55);
        let mut big = hex("4003 6b65 7928"); // "key", then a 40-byte value: 75 bytes.
        big.extend_from_slice(&[b'v'; 40]);
        let b = d.decode_all(&big).unwrap();
        assert_eq!(b.fields["key"], "v".repeat(40));
        assert!(d.table.is_empty() && d.size == 0);
    }
}
