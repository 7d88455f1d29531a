//! The tortured resource: a payload whose `Drop` poisons it, and the drop log beside it.
//!
//! Readers check, while they hold a guard, that the payload they see is alive ([`Payload::check`]):
//! a poisoned payload means the implementation dropped `T` under a holder (use after drop), a
//! non-zero drop count means the same seen from outside `T`.
//!
//! # Invariants
//! `magic` is [`ALIVE`] from construction until the payload's drop runs (or is simulated by a
//! deliberately broken implementation), then [`POISON`]. The drop log counts drops: it is 0 while
//! the payload lives and must be exactly 1 once it is gone.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// `magic` of a live payload.
pub const ALIVE: u64 = 0x0A11_7E5A_FE00_C0DE;
/// `magic` of a dropped payload.
pub const POISON: u64 = 0xDEAD_DEAD_DEAD_DEAD;

/// How many times a payload has been dropped; shared with the checker so that it can be read after
/// the payload is gone.
#[derive(Debug, Default)]
pub struct DropLog {
    drops: AtomicU32,
}

impl DropLog {
    /// Number of drops so far (must end at exactly 1).
    pub fn drops(&self) -> u32 {
        // Acquire pairs with the Release increment in `Payload::finish`, so that a checker that
        // sees the drop also sees the poison stored before it.
        self.drops.load(Ordering::Acquire)
    }
}

/// What a reader found wrong with a payload it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// The payload's own memory says it was dropped.
    Poisoned,
    /// The magic is neither alive nor poison: memory reuse or corruption.
    Corrupt(u64),
    /// The payload belongs to another generation than the one the reader asked for.
    WrongGeneration {
        /// Generation expected by the reader.
        expected: u64,
        /// Generation stored in the payload.
        found: u64,
    },
    /// The drop log says the payload was dropped.
    Dropped(u32),
}

/// The resource owned by each tortured revocable.
///
/// ```
/// use revocable_torture::payload::Payload;
/// let (p, log) = Payload::new(3);
/// assert_eq!(p.check(3), Ok(()));
/// drop(p);
/// assert_eq!(log.drops(), 1);
/// ```
#[derive(Debug)]
pub struct Payload {
    magic: AtomicU64,
    generation: u64,
    log: Arc<DropLog>,
    /// Set when a broken implementation simulated the drop early, so that the real drop later does
    /// not count twice (it is still the same, single, logical drop).
    simulated: AtomicBool,
}

impl Payload {
    /// A live payload of `generation`, and its drop log.
    pub fn new(generation: u64) -> (Self, Arc<DropLog>) {
        let log = Arc::new(DropLog::default());
        let p = Self {
            magic: AtomicU64::new(ALIVE),
            generation,
            log: Arc::clone(&log),
            simulated: AtomicBool::new(false),
        };
        (p, log)
    }

    /// The generation this payload was created for.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Checks, while holding access, that the payload is alive and is `generation`.
    pub fn check(&self, generation: u64) -> Result<(), Damage> {
        // Acquire pairs with the Release poison store in `finish`.
        match self.magic.load(Ordering::Acquire) {
            ALIVE => {}
            POISON => return Err(Damage::Poisoned),
            other => return Err(Damage::Corrupt(other)),
        }
        if self.generation != generation {
            return Err(Damage::WrongGeneration {
                expected: generation,
                found: self.generation,
            });
        }
        match self.log.drops() {
            0 => Ok(()),
            n => Err(Damage::Dropped(n)),
        }
    }

    /// What `Drop` does: poison, then count the drop.
    fn finish(&self) {
        // Release: whoever sees the poison or the count also sees everything before the drop.
        self.magic.store(POISON, Ordering::Release);
        self.log.drops.fetch_add(1, Ordering::Release);
    }

    /// Runs the effects of the drop now, through a shared reference: used only by
    /// [`crate::broken`] to model an implementation that drops `T` under its holders, without
    /// undefined behaviour in the test itself.
    pub(crate) fn simulate_drop(&self) {
        if !self.simulated.swap(true, Ordering::AcqRel) {
            self.finish();
        }
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        if !*self.simulated.get_mut() {
            self.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_poisons_and_counts_once() {
        let (p, log) = Payload::new(1);
        assert_eq!(p.generation(), 1);
        assert_eq!(log.drops(), 0);
        drop(p);
        assert_eq!(log.drops(), 1);
    }

    #[test]
    fn check_sees_poison_and_wrong_generation() {
        let (p, log) = Payload::new(5);
        assert_eq!(
            p.check(4),
            Err(Damage::WrongGeneration {
                expected: 4,
                found: 5
            })
        );
        p.simulate_drop();
        assert_eq!(p.check(5), Err(Damage::Poisoned));
        p.simulate_drop();
        drop(p);
        assert_eq!(
            log.drops(),
            1,
            "a simulated drop and the real one are one logical drop"
        );
    }

    #[test]
    fn check_sees_a_drop_log_without_poison() {
        let (p, log) = Payload::new(0);
        log.drops.fetch_add(1, Ordering::Relaxed);
        assert_eq!(p.check(0), Err(Damage::Dropped(1)));
    }
}
