//! [`Capture`]: a `tracing` subscriber of our own that keeps everything logged as text, for
//! tests that check what the client logs (no extra dependency).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

/// Everything logged since the subscriber was installed: one line per event, and one per
/// span's recorded fields, each field as ` name=value`.
#[derive(Clone, Debug, Default)]
pub struct Capture(Arc<Mutex<String>>);

impl Capture {
    /// The process's capture, installed as the global default subscriber on first use
    /// (so it sees every task's events, on every thread). Use it in a test binary whose
    /// tests do not install a subscriber of their own.
    pub fn global() -> &'static Capture {
        static CAPTURE: OnceLock<Capture> = OnceLock::new();
        CAPTURE.get_or_init(|| {
            let capture = Capture::default();
            tracing::subscriber::set_global_default(capture.clone())
                .expect("no other global subscriber in this test binary");
            capture
        })
    }

    /// What was logged so far.
    pub fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    /// Where the log is now: [`lines_since`](Self::lines_since) a mark reads only what
    /// was logged after it.
    pub fn mark(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// The lines logged since `mark` that contain every one of `needles`.
    pub fn lines_since(&self, mark: usize, needles: &[&str]) -> Vec<String> {
        self.0.lock().unwrap()[mark..]
            .lines()
            .filter(|line| needles.iter().all(|needle| line.contains(needle)))
            .map(str::to_owned)
            .collect()
    }
}

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut log = self.0.lock().unwrap();
        log.push_str("\nspan:");
        span.record(&mut Fields(&mut log));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut log = self.0.lock().unwrap();
        log.push_str("\nspan:");
        values.record(&mut Fields(&mut log));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut log = self.0.lock().unwrap();
        log.push('\n');
        event.record(&mut Fields(&mut log));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
