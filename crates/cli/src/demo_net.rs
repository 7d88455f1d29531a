//! `revocable demo --net`: real hot-plug. In a private network namespace (made with `ip netns
//! add`, deleted at the end; the host's interfaces are never touched) it creates a veth pair,
//! mounts devfs with `net/`, starts `cat net/veth0` client processes, brings the link up under
//! them and deletes it, and reports what each client saw and how long the unplug took to reach
//! it. Needs root and iproute2; without them it says why and exits 1.
//!
//! Invariant: every wait is bounded; clients still running at the end are killed; the mount,
//! its directory and the namespace are always removed.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use revocable_devfs::server::{Devfs, NetOptions, Options};
use revocable_drivers::net::netns::TempNetns;

const DEADLINE: Duration = Duration::from_secs(10);

fn say(s: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{s}");
}

/// What a client's stdout reader reports: a line, or the end of its output (the client exited).
enum Out {
    Line(usize, String),
    End(usize, Instant),
}

struct Client {
    child: Child,
    lines: Vec<String>,
    ended: Option<Instant>,
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) -> Result<(), String> {
    let t = Instant::now();
    while !cond() {
        if t.elapsed() > DEADLINE {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Collects client output until `done` holds for every client (bounded).
fn collect(
    rx: &Receiver<Out>,
    clients: &mut [Client],
    what: &str,
    done: impl Fn(&Client) -> bool,
) -> Result<(), String> {
    let t = Instant::now();
    while !clients.iter().all(&done) {
        let left = DEADLINE.saturating_sub(t.elapsed());
        match rx.recv_timeout(left) {
            Ok(Out::Line(i, l)) => clients[i].lines.push(l),
            Ok(Out::End(i, at)) => clients[i].ended = Some(at),
            Err(_) => return Err(format!("timed out waiting for {what}")),
        }
    }
    Ok(())
}

fn scenario(ns: &TempNetns, dir: &Path, fs: &Devfs, readers: usize) -> Result<bool, String> {
    let ip = |args: &[&str]| ns.ip(args).map_err(|e| e.to_string());
    ip(&[
        "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
    ])?;
    let file = dir.join("net/veth0");
    wait_until("net/veth0", || file.exists())?;
    say(&format!(
        "created veth0/veth1 in namespace {}: `ls net/` = {}",
        ns.name(),
        std::fs::read_dir(dir.join("net"))
            .map(|d| {
                let mut v: Vec<String> = d
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect();
                v.sort();
                v.join(" ")
            })
            .unwrap_or_default()
    ));
    let (tx, rx) = channel();
    let mut clients = Vec::new();
    for i in 0..readers {
        let mut child = Command::new("cat")
            .arg(&file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn cat: {e}"))?;
        let out = child.stdout.take().ok_or("no stdout")?;
        let tx = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(Out::Line(i, l));
            }
            let _ = tx.send(Out::End(i, Instant::now()));
        });
        clients.push(Client {
            child,
            lines: Vec::new(),
            ended: None,
        });
    }
    let r = (|| {
        collect(&rx, &mut clients, "the first lines", |c| {
            !c.lines.is_empty()
        })?;
        say(&format!(
            "{readers} `cat net/veth0` client processes read: {}",
            clients[0].lines[0]
        ));
        ip(&["link", "set", "veth1", "up"])?;
        ip(&["link", "set", "veth0", "up"])?;
        collect(&rx, &mut clients, "the link-up state", |c| {
            c.lines.iter().any(|l| l.starts_with("operstate up "))
        })?;
        say("`ip link set veth0 up`: each blocked client woke and printed the new state");
        let t0 = Instant::now();
        ip(&["link", "del", "veth0"])?;
        collect(&rx, &mut clients, "the clients to end", |c| {
            c.ended.is_some()
        })?;
        say(&format!(
            "`ip link del veth0` returned after {} µs; the clients:",
            t0.elapsed().as_micros()
        ));
        let mut ok = true;
        for (i, c) in clients.iter_mut().enumerate() {
            let st = c.child.wait().map_err(|e| e.to_string())?;
            let mut err = String::new();
            if let Some(mut e) = c.child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            let enodev = err.contains("No such device");
            ok &= enodev;
            say(&format!(
                "  client {i} (pid {}): {} lines, then `{}` ({}) {} µs after the delete began",
                c.child.id(),
                c.lines.len(),
                err.trim(),
                st,
                c.ended.map_or(0, |e| e.duration_since(t0).as_micros())
            ));
        }
        let gone = wait_until("net/veth0 to leave the directory", || !file.exists()).is_ok();
        say(&format!(
            "net/veth0 {}; dentries invalidated: {}",
            if gone { "is gone" } else { "is STILL THERE" },
            fs.stats().entry_invalidations.load(Relaxed)
        ));
        Ok(ok && gone)
    })();
    for c in &mut clients {
        let _ = c.child.kill();
        let _ = c.child.wait();
    }
    r
}

/// Runs the demo with `readers` client processes; `Ok(true)` when every client saw `ENODEV`,
/// the node left and opens balance releases.
///
/// # Errors
/// No root or iproute2 (with the reason), no FUSE, or a step that timed out.
pub fn run(readers: usize) -> Result<bool, String> {
    let ns = TempNetns::create("rvk-demo").map_err(|e| {
        format!("--net needs root and iproute2 to make a private network namespace: {e}")
    })?;
    let dir = crate::tempdir::make("revocable-demo-net")?;
    let options = Options {
        net: Some(NetOptions {
            netns: Some(ns.path()),
        }),
        ..Options::default()
    };
    let r = match Devfs::mount_with(&dir, 4, &options) {
        Err(e) => Err(e.to_string()),
        Ok(mut fs) => {
            say(&format!("devfs mounted at {} with net/", dir.display()));
            let r = scenario(&ns, &dir, &fs, readers.max(1));
            let balanced = crate::demo::unmount_balanced(&mut fs);
            r.map(|ok| ok && balanced)
        }
    };
    let _ = std::fs::remove_dir(&dir);
    drop(ns);
    say("network namespace deleted");
    r
}
