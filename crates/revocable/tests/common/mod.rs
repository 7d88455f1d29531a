//! Test helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Scales an iteration count down under Miri.
pub fn iters(n: usize) -> usize {
    if cfg!(miri) {
        (n / 1000).max(3)
    } else {
        n
    }
}

/// A value that counts its drops and poisons itself when dropped, so that a use after drop is
/// caught by `check`.
pub struct Poison {
    magic: AtomicUsize,
    drops: Arc<AtomicUsize>,
}

const ALIVE: usize = 0x5AFE_5AFE;
const DEAD: usize = 0xDEAD_DEAD;

impl Poison {
    pub fn new(drops: &Arc<AtomicUsize>) -> Self {
        Self {
            magic: AtomicUsize::new(ALIVE),
            drops: Arc::clone(drops),
        }
    }

    /// Panics if the value was dropped.
    pub fn check(&self) {
        assert_eq!(self.magic.load(Ordering::Relaxed), ALIVE, "use after drop");
    }
}

impl Drop for Poison {
    fn drop(&mut self) {
        assert_eq!(
            self.magic.swap(DEAD, Ordering::Relaxed),
            ALIVE,
            "double drop"
        );
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

pub fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}
