//! Builds the libfuse peer of the `peers` bench (benches/peers/libfuse_server.c) against the
//! system's libfuse 3 (Debian: libfuse3-dev), found with pkg-config. Where it cannot be built,
//! the bench prints why and measures the other servers. Nothing of the library depends on it.
//!
//! Sets `LIBFUSE_SERVER` (the binary's path, or empty) and `LIBFUSE_SERVER_WHY` (why not).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "benches/peers/libfuse_server.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("libfuse_server");
    let (path, why) = match build(src, &out) {
        Ok(()) => (out.display().to_string(), String::new()),
        Err(why) => (String::new(), why),
    };
    println!("cargo:rustc-env=LIBFUSE_SERVER={path}");
    println!("cargo:rustc-env=LIBFUSE_SERVER_WHY={why}");
}

fn build(src: &str, out: &std::path::Path) -> Result<(), String> {
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "fuse3"])
        .output()
        .map_err(|e| format!("pkg-config: {e}"))?;
    if !flags.status.success() {
        return Err("pkg-config finds no fuse3 (install libfuse3-dev)".into());
    }
    let flags = String::from_utf8_lossy(&flags.stdout).to_string();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let st = Command::new(&cc)
        .args(["-O2", "-Wall", "-o"])
        .arg(out)
        .arg(src)
        .args(flags.split_whitespace())
        .status()
        .map_err(|e| format!("{cc}: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("{cc} failed to build {src} ({st})"))
    }
}
