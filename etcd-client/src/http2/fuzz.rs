//! Fuzz targets for the HPACK and Huffman decoders (issue #13), run by `cargo test` for a
//! short pass and by `cargo xtask fuzz` for longer (see the `etcd-fuzz` crate).
//!
//! - `fuzz_hpack`: header lists encoded by an independent encoder (`httlib-hpack`: Huffman,
//!   indexing, table size updates), blocks in sequence over one connection's dynamic table:
//!   ours and an independent decoder (`loona-hpack`) must both accept every block and both
//!   give back the list that was encoded.
//! - `fuzz_hpack_mutated`: the same blocks mutated, random bytes, and blocks of tens of
//!   thousands of names: ours never panics and keeps its table within its limit.
//!   Disagreements with the reference are counted and printed, not failures.
//! - `fuzz_huffman`: round trips through an independent Huffman encoder; mutated codes
//!   never panic, and whatever ours accepts is the one encoding of what it decoded.

use std::time::Duration;

use etcd_fuzz::hpack::{BlockEncoder, Field, TABLE_SIZE, header_list};
use etcd_fuzz::{Case, Rng, hex, minimize, mutate, panics, quietly, run, skipped};

use super::hpack::{Block, Decoder};
use super::huffman;
use super::limits::MAX_HEADER_LIST_SIZE;

/// The decoded header-list limit the connection decodes with.
const LIST_LIMIT: usize = MAX_HEADER_LIST_SIZE as usize;

/// How long each target runs under a plain `cargo test`.
const SHORT: Duration = Duration::from_secs(2);

/// A decoded block as comparable data: the status, and the regular fields grouped by name
/// in the order names first appear (the order a `HeaderMap` gives them back in).
type Decoded = (Option<u16>, Vec<Field>);

/// Our decoder's output as [`Decoded`].
fn from_block(block: &Block) -> Decoded {
    let fields = block
        .fields
        .iter()
        .map(|(n, v)| (n.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    (block.status.map(|s| s.as_u16()), fields)
}

/// A plain header list as [`Decoded`]: the `:status` parsed, other pseudo-headers left
/// out (ours does not keep them), fields grouped by name.
fn from_list(list: &[Field]) -> Decoded {
    let mut status = None;
    let mut groups: Vec<(&[u8], Vec<&[u8]>)> = Vec::new();
    for (name, value) in list {
        if name == b":status" {
            status = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok());
        } else if !name.starts_with(b":") {
            match groups.iter_mut().find(|(n, _)| *n == name.as_slice()) {
                Some((_, values)) => values.push(value),
                None => groups.push((name, vec![value])),
            }
        }
    }
    let fields = groups
        .into_iter()
        .flat_map(|(n, vs)| vs.into_iter().map(move |v| (n.to_vec(), v.to_vec())))
        .collect();
    (status, fields)
}

/// Checks the decoder's dynamic table against its limit, as its `Debug` shows it.
fn table_within_limit(decoder: &Decoder) -> Result<(), String> {
    let debug = format!("{decoder:?}");
    let number = |key: &str| -> Result<usize, String> {
        let at = debug.find(key).ok_or(format!("no `{key}` in {debug}"))? + key.len();
        let digits: String = debug[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits
            .parse()
            .map_err(|_| format!("no number after `{key}` in {debug}"))
    };
    let (entries, size, max_size) = (
        number("entries: ")?,
        number(", size: ")?,
        number("max_size: ")?,
    );
    if size > max_size || max_size > TABLE_SIZE || entries * 32 > size {
        return Err(format!("dynamic table out of bounds: {debug}"));
    }
    Ok(())
}

/// The reference decoder, limited to our table size.
fn reference() -> loona_hpack::Decoder<'static> {
    let mut decoder = loona_hpack::Decoder::new();
    decoder.set_max_allowed_table_size(TABLE_SIZE);
    decoder
}

#[test]
fn fuzz_hpack() {
    run("hpack", SHORT, |case| {
        let mut encoder = BlockEncoder::new();
        let mut ours = Decoder::new();
        let mut theirs = reference();
        for i in 0..case.rng.between(1, 8) {
            let list = header_list(&mut case.rng, 24);
            let block = encoder.encode(&mut case.rng, &list);
            case.note(format!("block {i}: {list:?} encoded as {}", hex(&block)));
            let expected = from_list(&list);
            let decoded = ours
                .decode(&block, LIST_LIMIT)
                .map_err(|e| format!("ours rejects block {i}: {e}"))?;
            table_within_limit(&ours)?;
            let reference = theirs
                .decode(&block)
                .map_err(|e| format!("the reference rejects block {i}: {e:?}"))?;
            if from_block(&decoded) != expected {
                return Err(format!(
                    "ours decodes block {i} as {:?}",
                    from_block(&decoded)
                ));
            }
            if from_list(&reference) != expected {
                return Err(format!("the reference decodes block {i} as {reference:?}"));
            }
        }
        Ok(())
    });
}

/// How ours and the reference differed on mutated blocks.
#[derive(Default)]
struct Disagreements {
    /// Kinds of disagreement: how many, and the first sequence of blocks (the last one
    /// the one they differ on) of each.
    kinds: Vec<(String, u64, Vec<Vec<u8>>)>,
}

impl Disagreements {
    fn add(&mut self, kind: String, blocks: &[Vec<u8>]) {
        match self.kinds.iter_mut().find(|(k, _, _)| *k == kind) {
            Some((_, count, _)) => *count += 1,
            None => self.kinds.push((kind, 1, blocks.to_vec())),
        }
    }
}

/// The name of an error's variant (its `Debug` up to the first parenthesis or brace).
fn variant(error: &impl std::fmt::Debug) -> String {
    let text = format!("{error:?}");
    text.split(['(', ' ', '{'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Whether a decoded list has a name or value that `http` refuses (ours rejects those).
fn has_invalid_field(list: &[Field]) -> bool {
    list.iter().any(|(name, value)| {
        let name = name.strip_prefix(b":").unwrap_or(name);
        http::HeaderName::from_lowercase(name).is_err()
            || http::HeaderValue::from_bytes(value).is_err()
    })
}

/// A header block of `count` distinct names (`x0`, `x1`, …) with empty values, each a
/// literal without indexing.
fn many_names(count: usize) -> Vec<u8> {
    let mut block = Vec::with_capacity(count * 9);
    for i in 0..count {
        let name = format!("x{i}");
        block.extend_from_slice(&[0x00, name.len() as u8]);
        block.extend_from_slice(name.as_bytes());
        block.push(0x00);
    }
    block
}

/// A block for the mutated target: a valid one mutated, random bytes, or many names.
fn hostile_block(case: &mut Case, encoder: &mut BlockEncoder) -> Vec<u8> {
    let rng = &mut case.rng;
    match rng.below(64) {
        0 if !skipped("many names") => {
            let count = rng.between(20_000, 40_000);
            case.note(format!("a block of {count} distinct names x0, x1, … (literals without indexing, empty values)"));
            many_names(count)
        }
        1..=6 => {
            let len = rng.size(64);
            rng.bytes(len)
        }
        _ => {
            let list = header_list(rng, 24);
            let mut block = encoder.encode(rng, &list);
            if rng.below(3) != 0 {
                mutate(rng, &mut block, 1 << 16);
            }
            block
        }
    }
}

/// `block` for a failure report: in full when short, otherwise its length and start.
fn show(block: &[u8]) -> String {
    match block.len() {
        0..=2048 => hex(block),
        n => format!("{n} bytes starting {}…", hex(&block[..256])),
    }
}

#[test]
fn fuzz_hpack_mutated() {
    let mut disagreements = Disagreements::default();
    run("hpack_mutated", SHORT, |case| {
        let mut encoder = BlockEncoder::new();
        let mut ours = Decoder::new();
        let mut theirs = Some(reference());
        let mut earlier: Vec<Vec<u8>> = Vec::new();
        for _ in 0..case.rng.between(1, 8) {
            let block = hostile_block(case, &mut encoder);
            let mut result = None;
            if let Some(panic) = panics(|| result = Some(ours.decode(&block, LIST_LIMIT))) {
                let smallest = minimize_panic(&earlier, block);
                return Err(format!(
                    "ours panicked ({panic}) on block {} (earlier blocks: {}); smallest panicking block: {}",
                    earlier.len(),
                    earlier
                        .iter()
                        .map(|b| show(b))
                        .collect::<Vec<_>>()
                        .join(", "),
                    show(&smallest),
                ));
            }
            table_within_limit(&ours)?;
            let result = result.expect("decoded");
            if let Some(reference) = &mut theirs {
                let mut answer = None;
                let seen: Vec<Vec<u8>> = earlier.iter().cloned().chain([block.clone()]).collect();
                let disagreement = if panics(|| answer = Some(reference.decode(&block))).is_some() {
                    Some("the reference panicked".to_owned())
                } else {
                    match (&result, answer.expect("decoded")) {
                        (Ok(a), Ok(b)) if from_block(a) == from_list(&b) => None,
                        (Ok(_), Ok(_)) => Some("both accept, different fields".to_owned()),
                        // Both reject; the block's first fields may have changed the
                        // tables differently before the errors, and a decoding error ends
                        // the connection: later blocks prove nothing.
                        (Err(_), Err(_)) => Some(String::new()),
                        (Ok(_), Err(e)) => Some(format!(
                            "ours accepts, the reference rejects ({})",
                            variant(&e)
                        )),
                        (Err(e), Ok(list)) if has_invalid_field(&list) => Some(format!(
                            "ours rejects ({}) a name or value http refuses, the reference accepts it",
                            variant(e)
                        )),
                        (Err(e), Ok(_)) => Some(format!(
                            "ours rejects ({}), the reference accepts",
                            variant(e)
                        )),
                    }
                };
                if let Some(kind) = disagreement {
                    if !kind.is_empty() {
                        disagreements.add(kind, &seen);
                    }
                    // The tables may now differ: later blocks prove nothing.
                    theirs = None;
                }
            }
            earlier.push(block);
        }
        Ok(())
    });
    for (kind, count, blocks) in &disagreements.kinds {
        let blocks: Vec<String> = blocks.iter().map(|b| show(b)).collect();
        eprintln!(
            "hpack_mutated: {count} block(s): {kind}; first (after its earlier blocks): [{}]",
            blocks.join(", ")
        );
    }
}

/// The smallest block found that still panics our decoder after `earlier`.
fn minimize_panic(earlier: &[Vec<u8>], block: Vec<u8>) -> Vec<u8> {
    let attempts = if block.len() > 4096 { 40 } else { 4000 };
    quietly(|| {
        minimize(block, attempts, |candidate| {
            let mut decoder = Decoder::new();
            panics(|| {
                for b in earlier {
                    let _ = decoder.decode(b, LIST_LIMIT);
                }
                let _ = decoder.decode(candidate, LIST_LIMIT);
            })
            .is_some()
        })
    })
}

/// Random bytes for the Huffman round trip: text most of the time, any byte sometimes.
fn text(rng: &mut Rng) -> Vec<u8> {
    let len = rng.size(256);
    match rng.below(3) {
        0 => rng.bytes(len),
        _ => (0..len).map(|_| 0x20 + rng.below(0x5f) as u8).collect(),
    }
}

/// The Huffman code of `data` by the independent encoder.
fn huffman_encode(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    httlib_huffman::encode(data, &mut out).expect("every byte has a code");
    out
}

#[test]
fn fuzz_huffman() {
    run("huffman", SHORT, |case| {
        let data = text(&mut case.rng);
        let mut code = huffman_encode(&data);
        case.note(format!("text {} encoded as {}", hex(&data), hex(&code)));
        let mut decoded = Vec::new();
        huffman::decode(&code, &mut decoded).map_err(|e| format!("ours rejects it: {e}"))?;
        if decoded != data {
            return Err(format!("ours decodes it as {}", hex(&decoded)));
        }
        let reference = loona_hpack::huffman::HuffmanDecoder::new()
            .decode(&code)
            .map_err(|e| format!("the reference rejects it: {e:?}"))?;
        if reference != data {
            return Err(format!("the reference decodes it as {}", hex(&reference)));
        }
        // Mutated: never a panic; what ours accepts must be the one encoding of its output
        // (the padding rules leave a single valid encoding of each string).
        mutate(&mut case.rng, &mut code, 1024);
        case.note(format!("mutated to {}", hex(&code)));
        decoded.clear();
        match huffman::decode(&code, &mut decoded) {
            Ok(()) if huffman_encode(&decoded) != code => Err(format!(
                "ours accepts it as {}, whose encoding differs",
                hex(&decoded)
            )),
            Ok(()) => Ok(()),
            Err(_) => {
                let reference = loona_hpack::huffman::HuffmanDecoder::new().decode(&code);
                if let Ok(text) = reference
                    && huffman_encode(&text) == code
                {
                    return Err(format!("ours rejects the valid encoding of {}", hex(&text)));
                }

                Ok(())
            }
        }
    });
}
