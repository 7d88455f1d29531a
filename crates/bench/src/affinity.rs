//! Pinning measurement threads to CPUs (Linux `sched_setaffinity`; elsewhere a no-op).
//!
//! Thread `i` of a measurement goes to the `i % n`-th CPU this process may run on, so that
//! readers do not migrate during a run. Pinning is best effort: a failure is reported, not fatal.

/// The CPUs this process may run on, in increasing order (never empty).
///
/// ```
/// let cpus = revocable_bench::affinity::allowed_cpus();
/// assert!(!cpus.is_empty());
/// ```
pub fn allowed_cpus() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: cpu_set_t is plain data; all-zero is a valid (empty) set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid, writable cpu_set_t of the size we pass; pid 0 is this thread.
        let rc =
            unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
        if rc == 0 {
            let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
                // SAFETY: `cpu` < CPU_SETSIZE, the capacity of `set`.
                .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
                .collect();
            if !cpus.is_empty() {
                return cpus;
            }
        }
    }
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    (0..n).collect()
}

/// Number of CPUs this process may run on.
pub fn core_count() -> usize {
    allowed_cpus().len()
}

/// Pins the calling thread to `cpu`. Returns whether the OS accepted it.
///
/// ```
/// let cpu = revocable_bench::affinity::allowed_cpus()[0];
/// std::thread::spawn(move || revocable_bench::affinity::pin_current(cpu)).join().unwrap();
/// ```
pub fn pin_current(cpu: usize) -> bool {
    #[cfg(target_os = "linux")]
    {
        if cpu >= libc::CPU_SETSIZE as usize {
            return false;
        }
        // SAFETY: cpu_set_t is plain data; all-zero is a valid (empty) set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `cpu` < CPU_SETSIZE (checked above).
        unsafe { libc::CPU_SET(cpu, &mut set) };
        // SAFETY: `set` is a valid cpu_set_t of the size we pass; pid 0 is this thread.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpu;
        false
    }
}

/// Pins the calling thread to the `index`-th allowed CPU (modulo their count) if `enabled`.
/// Returns whether the thread is pinned.
pub fn pin_index(cpus: &[usize], index: usize, enabled: bool) -> bool {
    enabled && !cpus.is_empty() && pin_current(cpus[index % cpus.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinning_to_an_allowed_cpu_works_and_restricts_the_thread() {
        let cpus = allowed_cpus();
        let last = *cpus.last().unwrap();
        let seen = std::thread::spawn(move || {
            assert!(pin_current(last));
            allowed_cpus()
        })
        .join()
        .unwrap();
        assert_eq!(seen, vec![last]);
    }

    #[test]
    fn pinning_to_an_impossible_cpu_fails_cleanly() {
        assert!(!pin_current(usize::MAX));
        assert!(!pin_index(&[], 3, true));
        assert!(!pin_index(&[0], 0, false));
    }
}
