//! Fuzzing on stable Rust, as ordinary tests.
//!
//! A fuzz target is a closure that builds one input from a [`Case`]'s seeded random
//! generator, runs the code under test on it and checks invariants, returning `Err` (or
//! panicking) when one does not hold. [`run`] calls it for a short time by default, so
//! that `cargo test` runs every target on every push, and for as long as asked with
//! environment variables:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `ETCD_FUZZ_SECONDS` | how long each target runs (a decimal number) | the target's short pass |
//! | `ETCD_FUZZ_SEED` | the run's seed (decimal or `0x` hex) | taken from the clock, printed |
//! | `ETCD_FUZZ_CASE` | replay only the case with this seed (printed on failure) | none |
//! | `ETCD_FUZZ_SKIP` | words of the kinds of input not to generate ([`skipped`]) | none |
//!
//! Every case has a seed of its own, derived from the run's seed and its number, so a
//! failure is replayed alone with `ETCD_FUZZ_CASE`. Inputs are best made by mutating
//! valid ones ([`mutate`]): random bytes rarely get past a parser's first check.

pub mod alloc;
#[cfg(feature = "hpack")]
pub mod hpack;

use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

/// A small, fast, seeded generator (SplitMix64): the same seed gives the same case.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state)
    }

    /// The next 32 random bits.
    pub fn u32(&mut self) -> u32 {
        (self.u64() >> 32) as u32
    }

    /// A random byte.
    pub fn u8(&mut self) -> u8 {
        (self.u64() >> 56) as u8
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            ((u128::from(self.u64()) * n as u128) >> 64) as usize
        }
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// A size in `0..=max`, small ones much more likely than large ones.
    pub fn size(&mut self, max: usize) -> usize {
        let bound = self.below(max + 1);
        self.below(bound + 1)
    }

    /// True once in `n` times on average.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// A random bool.
    pub fn bool(&mut self) -> bool {
        self.u64() & 1 == 1
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.u8()).collect()
    }

    /// A number that is often at an edge: 0, 1, a power of two or next to one, the
    /// largest value; otherwise random. `bits` is the width (at most 64).
    pub fn edgy(&mut self, bits: u32) -> u64 {
        let max = if bits >= 64 {
            u64::MAX
        } else {
            (1 << bits) - 1
        };
        let value = match self.below(6) {
            0 => self.u64() & 3,
            1 => max - (self.u64() & 3),
            2 => 1u64 << self.below(bits as usize),
            3 => (1u64 << self.below(bits as usize)).wrapping_sub(1),
            4 => (max >> 1).wrapping_add(self.u64() & 3).wrapping_sub(1),
            _ => self.u64(),
        };
        value & max
    }
}

/// SplitMix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Applies one to four random edits to `data` (bit flips, edge values, inserted, deleted,
/// repeated or swapped runs, truncation), keeping it at most `max_len` bytes long.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, max_len: usize) {
    for _ in 0..rng.between(1, 4) {
        let len = data.len();
        let at = rng.below(len + 1);
        match rng.below(9) {
            0 if len > 0 => {
                let bit = rng.below(8);
                data[at.min(len - 1)] ^= 1 << bit;
            }
            1 if len > 0 => {
                let value = *rng.pick(&[0, 0x7f, 0x80, 0xff, 0x3f, 0x40]);
                data[at.min(len - 1)] = value;
            }
            2 => {
                let n = rng.size(16);
                let insert = rng.bytes(n);
                data.splice(at..at, insert);
            }
            3 => {
                let n = rng.size(16);
                let end = (at + n).min(len);
                data.drain(at..end);
            }
            4 => {
                let n = rng.size(32);
                let end = (at + n).min(len);
                let run = data[at..end].to_vec();
                let to = rng.below(data.len() + 1);
                for _ in 0..rng.between(1, 8) {
                    data.splice(to..to, run.iter().copied());
                }
            }
            5 if len >= 4 => {
                let at = at.min(len - 4);
                let value = rng.edgy(32) as u32;
                data[at..at + 4].copy_from_slice(&value.to_be_bytes());
            }
            6 => data.truncate(at),
            7 if len >= 2 => {
                let (a, b) = (rng.below(len), rng.below(len));
                data.swap(a, b);
            }
            _ => {
                let n = rng.size(8);
                let end = (at + n).min(len);
                for byte in &mut data[at..end] {
                    *byte = rng.u8();
                }
            }
        }
    }
    data.truncate(max_len);
}

/// The smallest sub-sequence of `items` found (by removing runs, halving their length down
/// to single items) for which `fails` still holds; `fails(items)` is assumed to hold.
/// At most `attempts` calls of `fails`.
pub fn minimize<T: Clone>(
    mut items: Vec<T>,
    attempts: usize,
    mut fails: impl FnMut(&[T]) -> bool,
) -> Vec<T> {
    let mut tries = 0;
    let mut chunk = items.len().div_ceil(2).max(1);
    loop {
        let mut at = 0;
        let mut removed = false;
        while at < items.len() {
            if tries == attempts {
                return items;
            }
            tries += 1;
            let mut candidate = items.clone();
            candidate.drain(at..(at + chunk).min(items.len()));
            if fails(&candidate) {
                items = candidate;
                removed = true;
            } else {
                at += chunk;
            }
        }
        if chunk == 1 && !removed {
            return items;
        }
        if !removed {
            chunk = chunk.div_ceil(2);
        }
    }
}

/// `data` as lowercase hex, for failure reports.
pub fn hex(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() * 2);
    for byte in data {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// `text` cut to its first `max` characters (a note on how much was cut), for failure
/// reports of large values.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}… ({} bytes in all)", &text[..at], text.len()),
    }
}

/// Whether the input kind `name` is to be left out: `ETCD_FUZZ_SKIP` lists, comma-separated,
/// words of the kinds of input not to generate (to look past a known bug while it is being
/// fixed). Default: none.
pub fn skipped(name: &str) -> bool {
    std::env::var("ETCD_FUZZ_SKIP").is_ok_and(|skip| {
        skip.split(',')
            .map(str::trim)
            .any(|word| !word.is_empty() && name.contains(word))
    })
}

/// One case: its generator, and notes printed if it fails.
#[derive(Debug)]
pub struct Case {
    /// The case's generator, seeded with [`Case::seed`].
    pub rng: Rng,
    seed: u64,
    notes: Vec<String>,
}

impl Case {
    /// A case from its seed.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Rng::new(seed),
            seed,
            notes: Vec::new(),
        }
    }

    /// The case's seed (`ETCD_FUZZ_CASE` replays it).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Records what the case is doing (its input, its step), printed if it fails.
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }
}

/// What a run did.
#[derive(Clone, Copy, Debug)]
pub struct Report {
    /// Cases run.
    pub executions: u64,
    /// How long they took.
    pub elapsed: Duration,
}

/// The settings of a run, from the environment.
#[derive(Clone, Copy, Debug)]
struct Settings {
    duration: Duration,
    seed: u64,
    replay: Option<u64>,
}

impl Settings {
    fn from_env(short: Duration) -> Self {
        let duration = match std::env::var("ETCD_FUZZ_SECONDS") {
            Ok(s) => Duration::from_secs_f64(
                s.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("ETCD_FUZZ_SECONDS={s} is not a number")),
            ),
            Err(_) => short,
        };
        let seed = env_u64("ETCD_FUZZ_SEED").unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            mix(nanos ^ u64::from(std::process::id()))
        });
        Self {
            duration,
            seed,
            replay: env_u64("ETCD_FUZZ_CASE"),
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let raw = std::env::var(name).ok()?;
    let s = raw.trim();
    let parsed = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={raw} is not a number")))
}

/// Runs `target` on fresh cases for `short` (or `ETCD_FUZZ_SECONDS`), and panics with the
/// run's and the failing case's seeds and the case's notes at the first case that fails
/// (returns `Err` or panics). Prints the number of executions at the end.
pub fn run(
    name: &str,
    short: Duration,
    mut target: impl FnMut(&mut Case) -> Result<(), String>,
) -> Report {
    let settings = Settings::from_env(short);
    let started = Instant::now();
    let mut executions = 0u64;
    eprintln!(
        "fuzz target `{name}`: seed {:#x}, {:.1} s",
        settings.seed,
        settings.duration.as_secs_f64()
    );
    loop {
        let seed = match settings.replay {
            Some(seed) => seed,
            None => mix(settings.seed.wrapping_add(executions)),
        };
        let mut case = Case::new(seed);
        let outcome = catch_unwind(AssertUnwindSafe(|| target(&mut case)));
        executions += 1;
        let failure = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(why)) => Some(why),
            Err(panic) => Some(format!("panicked: {}", panic_message(&*panic))),
        };
        if let Some(why) = failure {
            let mut notes = String::new();
            for note in &case.notes {
                let _ = writeln!(notes, "  {note}");
            }
            panic!(
                "fuzz target `{name}` failed at case {} of run seed {:#x}: {why}\n\
                 replay: ETCD_FUZZ_CASE={seed:#x}\n{notes}",
                executions - 1,
                settings.seed,
            );
        }
        if settings.replay.is_some() || started.elapsed() >= settings.duration {
            break;
        }
    }
    let report = Report {
        executions,
        elapsed: started.elapsed(),
    };
    eprintln!(
        "fuzz target `{name}`: {executions} executions in {:.1} s ({:.0}/s)",
        report.elapsed.as_secs_f64(),
        executions as f64 / report.elapsed.as_secs_f64().max(1e-9)
    );
    report
}

/// Runs `f`, and returns the message of its panic if it panicked. The panic is still
/// printed by the panic hook; see [`quietly`].
pub fn panics<R>(f: impl FnOnce() -> R) -> Option<String> {
    catch_unwind(AssertUnwindSafe(f))
        .err()
        .map(|panic| panic_message(&*panic))
}

/// Runs `f` with panic messages not printed (while minimizing an input that panics, say).
/// The hook is the process's: other threads' panics go unprinted meanwhile too.
pub fn quietly<R>(f: impl FnOnce() -> R) -> R {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let out = catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    out.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// The message of a caught panic.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimize_finds_the_one_culprit() {
        let items: Vec<u32> = (0..100).collect();
        let small = minimize(items, 1000, |items| {
            items.contains(&42) && items.contains(&7)
        });
        assert_eq!(small, vec![7, 42]);
    }

    #[test]
    fn a_failing_target_names_its_case() {
        let failed = catch_unwind(|| {
            run("always-fails", Duration::from_secs(1), |case| {
                case.note("input: nothing");
                Err("broken".into())
            })
        });
        let message = panic_message(&*failed.unwrap_err());
        assert!(message.contains("ETCD_FUZZ_CASE=0x"), "{message}");
        assert!(message.contains("input: nothing"), "{message}");
    }

    #[test]
    fn the_same_seed_makes_the_same_numbers() {
        let mut a = Rng::new(5);
        let mut b = Rng::new(5);
        let mut data = b"hello world".to_vec();
        mutate(&mut a, &mut data, 64);
        let mut again = b"hello world".to_vec();
        mutate(&mut b, &mut again, 64);
        assert_eq!(data, again);
        assert!((0..1000).all(|_| a.below(7) < 7));
    }
}
