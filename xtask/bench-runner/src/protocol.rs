//! How a watching child and its parent talk, over the child's stdin and stdout, and how the
//! child checks the events it receives.
//!
//! ```text
//! child  -> parent   READY <key prefix> <putters> <duration ms> <count>
//! parent -> child    DONE <puts>          (or ABORT <why>)
//! child  -> parent   ... more READY phases, then one JSON line: the result
//! ```
//!
//! On `READY` the parent puts `<key prefix><n>` for n = 0, 1, .. with `<putters>` concurrent
//! tasks, for `<duration ms>` (when non-zero) or until `<count>` puts (when non-zero), then
//! says how many puts were acknowledged. Each value starts with the CLOCK_MONOTONIC time the
//! put was sent, so the child can tell the put-sent → event-received latency. The child ends
//! the phase once it has received every event (none lost, none repeated), or fails.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::cpu::mono_ns;
use crate::workloads::VALUE_LEN;

/// How long a child waits, after `DONE`, for the events still in flight.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

const STAMP_LEN: usize = 20;

/// A 256-byte value starting with the time it is sent.
pub(crate) fn stamped_value() -> Bytes {
    let mut v = format!("{:0width$}", mono_ns(), width = STAMP_LEN).into_bytes();
    v.resize(VALUE_LEN, b'v');
    Bytes::from(v)
}

fn stamp_of(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value.get(..STAMP_LEN)?)
        .ok()?
        .parse()
        .ok()
}

/// A put phase asked for by a child.
#[derive(Debug)]
pub(crate) struct Ready {
    pub(crate) prefix: String,
    pub(crate) putters: usize,
    pub(crate) duration: Duration,
    pub(crate) count: u64,
}

impl Ready {
    pub(crate) fn line(&self) -> String {
        format!(
            "READY {} {} {} {}",
            self.prefix,
            self.putters,
            self.duration.as_millis(),
            self.count
        )
    }

    pub(crate) fn parse(line: &str) -> Option<Ready> {
        let mut it = line.strip_prefix("READY ")?.split(' ');
        Some(Ready {
            prefix: it.next()?.to_owned(),
            putters: it.next()?.parse().ok()?,
            duration: Duration::from_millis(it.next()?.parse().ok()?),
            count: it.next()?.parse().ok()?,
        })
    }
}

/// The child's side: its stdin, line by line, read by a task of its own.
pub(crate) struct Control(mpsc::UnboundedReceiver<String>);

impl Control {
    pub(crate) fn start() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Control(rx)
    }

    /// Tells the parent to start a put phase.
    pub(crate) async fn ready(&self, ready: &Ready) -> Result<(), String> {
        let mut out = tokio::io::stdout();
        let line = format!("{}\n", ready.line());
        out.write_all(line.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        out.flush().await.map_err(|e| e.to_string())
    }

    /// The parent's answer to a phase: the number of acknowledged puts.
    pub(crate) async fn done(&mut self) -> Result<u64, String> {
        let line = self.0.recv().await.ok_or("the parent closed stdin")?;
        if let Some(n) = line.strip_prefix("DONE ") {
            return n.trim().parse().map_err(|e| format!("bad DONE line: {e}"));
        }
        Err(match line.strip_prefix("ABORT ") {
            Some(why) => format!("the parent's puts failed: {why}"),
            None => format!("unexpected line from the parent: {line}"),
        })
    }
}

/// Checks the events of one phase: keys `<prefix><n>`, each seen exactly once.
pub(crate) struct Checker {
    prefix: Vec<u8>,
    seen: Vec<u64>,
    pub(crate) received: u64,
    pub(crate) duplicates: u64,
    pub(crate) foreign: u64,
    /// Put sent → event received, ns.
    pub(crate) latencies: Vec<u64>,
}

impl Checker {
    pub(crate) fn new(prefix: &str) -> Self {
        Checker {
            prefix: prefix.as_bytes().to_vec(),
            seen: Vec::new(),
            received: 0,
            duplicates: 0,
            foreign: 0,
            latencies: Vec::with_capacity(1 << 16),
        }
    }

    pub(crate) fn event(&mut self, key: &[u8], value: &[u8]) {
        let now = mono_ns();
        let n = key
            .strip_prefix(self.prefix.as_slice())
            .and_then(|rest| std::str::from_utf8(rest).ok())
            .and_then(|rest| rest.parse::<usize>().ok());
        let Some(n) = n else {
            self.foreign += 1;
            return;
        };
        let (word, bit) = (n / 64, 1u64 << (n % 64));
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & bit != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= bit;
        self.received += 1;
        if let Some(sent) = stamp_of(value) {
            self.latencies.push(now.saturating_sub(sent));
        }
    }

    /// Whether every one of `expected` puts has been seen.
    pub(crate) fn complete(&self, expected: u64) -> bool {
        self.received >= expected
    }

    /// How many distinct keys `<prefix><n>` with `n < expected` were seen.
    fn seen_below(&self, expected: u64) -> u64 {
        let (full, rest) = ((expected / 64) as usize, expected % 64);
        let words = self
            .seen
            .iter()
            .take(full)
            .map(|w| u64::from(w.count_ones()));
        let tail = match self.seen.get(full) {
            Some(w) if rest > 0 => u64::from((w & ((1u64 << rest) - 1)).count_ones()),
            _ => 0,
        };
        words.sum::<u64>() + tail
    }

    /// Events lost, repeated, or for keys that were never put, after `expected` puts.
    pub(crate) fn errors(&self, expected: u64) -> u64 {
        let seen = self.seen_below(expected);
        (expected - seen.min(expected)) + (self.received - seen) + self.duplicates + self.foreign
    }

    /// What is wrong after `expected` puts, if anything.
    pub(crate) fn verdict(&self, expected: u64) -> Option<String> {
        let seen = self.seen_below(expected);
        (self.errors(expected) > 0).then(|| {
            format!(
                "{} of {expected} events received: {} lost, {} repeated, {} unexpected keys",
                self.received,
                expected - seen.min(expected),
                self.duplicates,
                self.foreign + self.received - seen
            )
        })
    }
}

/// One source of watch events, for the child's phase loop.
pub(crate) trait Events: Send {
    /// Waits for the next response and feeds its put events to `checker`; `Ok(false)` when
    /// the stream ended. Cancel-safe.
    fn next(
        &mut self,
        checker: &mut Checker,
    ) -> impl std::future::Future<Output = Result<bool, String>> + Send;
}

/// Runs one phase: asks the parent for the puts and receives their events until all came.
pub(crate) async fn phase<E: Events>(
    events: &mut E,
    control: &mut Control,
    checker: &mut Checker,
    ready: &Ready,
) -> Result<u64, String> {
    control.ready(ready).await?;
    let mut expected = None;
    let mut drain_deadline = None;
    loop {
        if let Some(n) = expected
            && checker.complete(n)
        {
            return Ok(n);
        }
        tokio::select! {
            more = events.next(checker) => {
                if !more? {
                    return Err("the watch stream ended".into());
                }
            }
            done = control.done(), if expected.is_none() => {
                expected = Some(done?);
                drain_deadline = Some(tokio::time::Instant::now() + DRAIN_TIMEOUT);
            }
            _ = tokio::time::sleep_until(drain_deadline.unwrap_or_else(tokio::time::Instant::now)),
                if drain_deadline.is_some() => {
                let n = expected.unwrap_or(0);
                return Err(checker
                    .verdict(n)
                    .unwrap_or_else(|| "timed out".into()));
            }
        }
    }
}
