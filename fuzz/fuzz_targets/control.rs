//! The `control` file's parser and commands under arbitrary bytes: no panic, only EINVAL/ENODEV.
#![no_main]

use libfuzzer_sys::fuzz_target;
use revocable_devfs::control::{parse, Devices};

fuzz_target!(|data: &[u8]| {
    let d = Devices::new();
    let r = d.run_text(data);
    assert!(
        matches!(r, Ok(()) | Err(libc::EINVAL) | Err(libc::ENODEV)),
        "{r:?}"
    );
    if let Ok(s) = std::str::from_utf8(data) {
        for l in s.lines() {
            let _ = parse(l);
        }
    }
    assert_eq!(d.listing().lines().count(), 2);
});
