//! The server's own history, replayed: the state of every key at every revision, and where
//! each put value landed.

use std::collections::{BTreeMap, HashMap};

use super::model::{Event, EventKind, Kv, RevisionRecord, in_range};

/// The reference history of the checked key range: what every key held at every revision.
#[derive(Clone, Debug, Default)]
pub struct Replay {
    revisions: BTreeMap<i64, RevisionRecord>,
    /// Per key, its states in revision order: `(revision, value from then on)`.
    keys: BTreeMap<String, Vec<(i64, Option<Kv>)>>,
    /// Where each put value landed: `(revision, key)`, several if it was put more than once.
    values: HashMap<String, Vec<(i64, String)>>,
}

impl Replay {
    /// Builds the replay from the server's records, in revision order.
    pub fn new(records: impl IntoIterator<Item = RevisionRecord>) -> Self {
        let mut replay = Replay::default();
        for record in records {
            for event in &record.events {
                let versions = replay.keys.entry(event.kv.key.clone()).or_default();
                match event.kind {
                    EventKind::Put => {
                        versions.push((record.revision, Some(event.kv.clone())));
                        replay
                            .values
                            .entry(event.kv.value.clone())
                            .or_default()
                            .push((record.revision, event.kv.key.clone()));
                    }
                    EventKind::Delete => versions.push((record.revision, None)),
                }
            }
            replay.revisions.insert(record.revision, record);
        }
        replay
    }

    /// The record of one revision, if it changed a checked key.
    pub fn revision(&self, revision: i64) -> Option<&RevisionRecord> {
        self.revisions.get(&revision)
    }

    /// Every record, in revision order.
    pub fn records(&self) -> impl Iterator<Item = &RevisionRecord> {
        self.revisions.values()
    }

    /// The highest revision recorded, 0 if none.
    pub fn last_revision(&self) -> i64 {
        self.revisions.keys().next_back().copied().unwrap_or(0)
    }

    /// Where a put value landed.
    pub fn value_landings(&self, value: &str) -> &[(i64, String)] {
        self.values.get(value).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every value put more than once, with its landings.
    pub fn repeated_values(&self) -> impl Iterator<Item = (&str, &[(i64, String)])> {
        self.values
            .iter()
            .filter(|(_, landings)| landings.len() > 1)
            .map(|(value, landings)| (value.as_str(), landings.as_slice()))
    }

    /// What `key` held at `revision`.
    pub fn get(&self, key: &str, revision: i64) -> Option<&Kv> {
        let versions = self.keys.get(key)?;
        let at = versions.partition_point(|(rev, _)| *rev <= revision);
        versions[..at].last().and_then(|(_, kv)| kv.as_ref())
    }

    /// The live key-values of a range at `revision`, in key order.
    pub fn range(&self, key: &str, end: Option<&str>, revision: i64) -> Vec<&Kv> {
        let candidates: Box<dyn Iterator<Item = &String>> = match end {
            None => Box::new(self.keys.get_key_value(key).map(|(k, _)| k).into_iter()),
            _ => Box::new(
                self.keys
                    .range::<str, _>((std::ops::Bound::Included(key), std::ops::Bound::Unbounded))
                    .map(|(k, _)| k)
                    .take_while(move |k| in_range(k, key, end)),
            ),
        };
        candidates.filter_map(|k| self.get(k, revision)).collect()
    }

    /// The events of a range with `from <= revision <= to`, in order.
    pub fn events_between(
        &self,
        key: &str,
        end: Option<&str>,
        from: i64,
        to: i64,
    ) -> Vec<(i64, &Event)> {
        if from > to {
            return Vec::new();
        }
        self.revisions
            .range(from..=to)
            .flat_map(|(rev, record)| record.events.iter().map(move |e| (*rev, e)))
            .filter(|(_, e)| in_range(&e.kv.key, key, end))
            .collect()
    }
}
