//! Randomness for spreading clients apart: jittered backoff pauses and random starting
//! points, so that many clients that failed together do not retry together, and clients
//! started together do not all pick the same member first.
//!
//! A splitmix64 generator per thread, seeded from the standard library's randomly keyed
//! [`RandomState`] mixed with the time and the generator's address. Not for cryptography;
//! no dependency.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime};

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    let local = 0u8;
    hasher.write_usize(std::ptr::addr_of!(local) as usize);
    hasher.finish()
}

/// A uniformly distributed random `u64` (splitmix64).
pub(crate) fn next_u64() -> u64 {
    STATE.with(|state| {
        let next = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// A random number in `0..n` (0 when `n` is 0); the bias is below `n / 2^64`.
pub(crate) fn below(n: u64) -> u64 {
    ((u128::from(next_u64()) * u128::from(n)) >> 64) as u64
}

/// "Equal jitter": a pause drawn uniformly from `[pause / 2, pause]`. Half the pause is
/// kept, so a client never retries at once after a failure, and the other half is random,
/// so clients that failed together spread their retries over half the interval.
pub(crate) fn equal(pause: Duration) -> Duration {
    let half = pause / 2;
    let spread = u64::try_from((pause - half).as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(below(spread.saturating_add(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn equal_jitter_stays_within_half_and_whole_and_varies() {
        for pause in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_millis(25),
            Duration::from_secs(2),
            Duration::MAX,
        ] {
            let drawn: Vec<Duration> = (0..200).map(|_| equal(pause)).collect();
            for d in &drawn {
                assert!(*d >= pause / 2 && *d <= pause, "{d:?} for {pause:?}");
            }
            if pause >= Duration::from_millis(1) {
                let distinct: HashSet<_> = drawn.iter().collect();
                assert!(
                    distinct.len() > 100,
                    "{} distinct for {pause:?}",
                    distinct.len()
                );
            }
        }
    }

    #[test]
    fn below_stays_below_and_covers_the_range() {
        assert_eq!(below(0), 0);
        assert_eq!(below(1), 0);
        let mut seen = [0u32; 3];
        for _ in 0..3000 {
            let i = below(3);
            assert!(i < 3);
            seen[i as usize] += 1;
        }
        // Expected 1000 each; 700 is more than nine standard deviations away.
        assert!(seen.iter().all(|&n| n > 700), "{seen:?}");
    }

    #[test]
    fn threads_draw_different_sequences() {
        let here: Vec<u64> = (0..4).map(|_| next_u64()).collect();
        let there = std::thread::spawn(|| (0..4).map(|_| next_u64()).collect::<Vec<u64>>())
            .join()
            .unwrap();
        assert_ne!(here, there);
    }
}
