//! Port of the kernel's revocable kselftest: fixture + `basic`, `revocation`, `macro` (v4; offset
//! 0x1234, `REVOCABLE_TRY_ACCESS_WITH`), `scoped` (v6 on, kept in the merged v7; offset 0x5678,
//! `REVOCABLE_TRY_ACCESS_SCOPED`) and `define` (the follow-up to v7; offset 0x9abc,
//! `DEFINE_REVOCABLE`), run through real system calls on the mounted `revocable_test` files.

mod common;

use std::os::fd::OwnedFd;

use common::*;
use revocable_devfs::revocable_test::{DEFINE_OFFSET, SCOPED_OFFSET, WITH_OFFSET};

const TEST_DATA: &[u8] = b"12345678";

/// The kselftest fixture: provider opened write-only, TEST_DATA written, consumer opened.
struct Fixture {
    m: Mounted,
    pfd: OwnedFd,
    cfd: OwnedFd,
}

fn setup(tag: &str) -> Option<Fixture> {
    let m = Mounted::new(tag)?;
    let pfd = open(&m.path("revocable_test/provider"), libc::O_WRONLY).expect("open provider");
    assert_eq!(write(&pfd, TEST_DATA), Ok(TEST_DATA.len()));
    let cfd = open(&m.path("revocable_test/consumer"), libc::O_RDONLY).expect("open consumer");
    Some(Fixture { m, pfd, cfd })
}

#[test]
fn basic() {
    let Some(f) = setup("ks-basic") else { return };
    assert_eq!(pread(&f.cfd, 64, 0).unwrap(), TEST_DATA);
}

#[test]
fn revocation() {
    let Some(f) = setup("ks-revocation") else {
        return;
    };
    assert_eq!(pread(&f.cfd, 64, 0).unwrap(), TEST_DATA);
    assert_eq!(write(&f.pfd, b"resource_gone"), Ok(13));
    assert_eq!(pread(&f.cfd, 64, 0).unwrap(), b"(null)");
}

/// One access form: the string while the resource lives, `(null)` after `resource_gone`.
fn access_form(tag: &str, offset: u64) {
    let Some(f) = setup(tag) else { return };
    assert_eq!(pread(&f.cfd, 64, offset as i64).unwrap(), TEST_DATA);
    assert_eq!(write(&f.pfd, b"resource_gone"), Ok(13));
    assert_eq!(pread(&f.cfd, 64, offset as i64).unwrap(), b"(null)");
}

#[test]
fn macro_form() {
    access_form("ks-macro", WITH_OFFSET);
}

#[test]
fn scoped_form() {
    access_form("ks-scoped", SCOPED_OFFSET);
}

#[test]
fn define_form() {
    access_form("ks-define", DEFINE_OFFSET);
}

#[test]
fn closing_provider_removes_consumer() {
    let Some(f) = setup("ks-close") else { return };
    let Fixture { m, pfd, cfd } = f;
    drop(pfd);
    m.wait_until("consumer removed", || {
        !m.path("revocable_test/consumer").exists()
    });
    // A consumer opened before keeps its handle: the resource reads as revoked.
    assert_eq!(pread(&cfd, 64, 0).unwrap(), b"(null)");
    assert_eq!(
        open(&m.path("revocable_test/consumer"), libc::O_RDONLY).err(),
        Some(libc::ENOENT)
    );
    // `cat` of the consumer prints the string once (EOF after it).
    let p = open(&m.path("revocable_test/provider"), libc::O_WRONLY).unwrap();
    write(&p, b"abc\n").unwrap();
    assert_eq!(
        std::fs::read_to_string(m.path("revocable_test/consumer")).unwrap(),
        "abc"
    );
}
