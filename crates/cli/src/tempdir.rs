//! Private temporary directories (mount points for `demo` and `torture --devfs`).

use std::ffi::CString;
use std::path::PathBuf;

/// Creates a fresh directory `$TMPDIR/PREFIX-XXXXXX` (mode 0700) with `mkdtemp(3)`.
pub fn make(prefix: &str) -> Result<PathBuf, String> {
    let t = format!("{}/{prefix}-XXXXXX", std::env::temp_dir().display());
    let mut b = CString::new(t)
        .map_err(|e| e.to_string())?
        .into_bytes_with_nul();
    // SAFETY: `b` is a writable NUL-terminated template that mkdtemp fills in place.
    let p = unsafe { libc::mkdtemp(b.as_mut_ptr().cast()) };
    if p.is_null() {
        return Err(format!("mkdtemp: {}", std::io::Error::last_os_error()));
    }
    b.pop();
    String::from_utf8(b)
        .map(PathBuf::from)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn makes_distinct_private_directories() {
        use std::os::unix::fs::PermissionsExt;
        let a = super::make("revocable-test").unwrap();
        let b = super::make("revocable-test").unwrap();
        assert_ne!(a, b);
        assert_eq!(
            std::fs::metadata(&a).unwrap().permissions().mode() & 0o777,
            0o700
        );
        std::fs::remove_dir(a).unwrap();
        std::fs::remove_dir(b).unwrap();
    }
}
