//! A small async service whose backend can be unplugged while requests are in flight.
//!
//! A tokio server answers line-based requests over a Unix socket. Its backend handle is an
//! `Arc<Revocable<Backend>>`; each request takes a Send guard (`try_access_owned`) and holds it
//! across `.await`s (the simulated device I/O) on a multi-thread runtime. After 150 ms (or at
//! Ctrl-C) the backend is unplugged with `revoke_async().await`: requests already in flight
//! finish, later ones get a clean `ENODEV` error, and the backend is dropped exactly when the
//! last in-flight request lets go — without blocking an executor thread.
//!
//! Run: `cargo run -p revocable --example async_service`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use revocable::Revocable;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// The device behind the service.
struct Backend {
    name: &'static str,
    served: AtomicU64,
    alive: AtomicBool,
}

impl Backend {
    /// One request: some device I/O (a sleep here), then an answer.
    async fn read_register(&self, reg: &str) -> String {
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(self.alive.load(Ordering::SeqCst), "used after unplug");
        self.served.fetch_add(1, Ordering::Relaxed);
        format!("OK {}:{reg}=0x{:04x}", self.name, reg.len() * 0x101)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::SeqCst);
        println!(
            "backend: dropped after serving {} requests (device closed)",
            self.served.load(Ordering::Relaxed)
        );
    }
}

/// What happened to the requests, for the closing summary.
#[derive(Default)]
struct Stats {
    before: AtomicU64,
    in_flight_at_unplug: AtomicU64,
    refused: AtomicU64,
    unplugging: AtomicBool,
}

async fn serve(conn: UnixStream, backend: Arc<Revocable<Backend>>, stats: Arc<Stats>) {
    let (rd, mut wr) = conn.into_split();
    let mut lines = BufReader::new(rd).lines();
    while let Ok(Some(req)) = lines.next_line().await {
        let reply = match backend.try_access_owned() {
            None => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                String::from("ERR ENODEV: backend unplugged")
            }
            Some(dev) => {
                let began_before_unplug = !stats.unplugging.load(Ordering::SeqCst);
                // The guard is held across this await, possibly resumed on another worker.
                let reply = dev.read_register(&req).await;
                if began_before_unplug && stats.unplugging.load(Ordering::SeqCst) {
                    stats.in_flight_at_unplug.fetch_add(1, Ordering::Relaxed);
                } else {
                    stats.before.fetch_add(1, Ordering::Relaxed);
                }
                reply
            }
        };
        if wr.write_all(format!("{reply}\n").as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn client(path: std::path::PathBuf, id: usize) -> (u64, u64) {
    let conn = UnixStream::connect(&path).await.expect("connect");
    let (rd, mut wr) = conn.into_split();
    let mut lines = BufReader::new(rd).lines();
    let (mut ok, mut err) = (0, 0);
    for n in 0..40 {
        let req = format!("c{id}r{n}\n");
        wr.write_all(req.as_bytes()).await.expect("write");
        match lines.next_line().await.expect("read").as_deref() {
            Some(r) if r.starts_with("OK") => ok += 1,
            Some(r) if r.starts_with("ERR ENODEV") => {
                err += 1;
                if err == 3 {
                    break; // the device is gone; a real client would give up too
                }
            }
            other => panic!("unexpected reply {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    (ok, err)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = std::env::temp_dir().join(format!("revocable-async-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("service.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).expect("bind");
    println!("service: listening on {}", path.display());

    let backend = Arc::new(Revocable::new(Backend {
        name: "cros_ec",
        served: AtomicU64::new(0),
        alive: AtomicBool::new(true),
    }));
    let stats = Arc::new(Stats::default());
    {
        let (backend, stats) = (backend.clone(), stats.clone());
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, backend.clone(), stats.clone()));
            }
        });
    }
    let clients: Vec<_> = (0..8)
        .map(|id| tokio::spawn(client(path.clone(), id)))
        .collect();

    // Unplug after 150 ms, or at Ctrl-C.
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(150)) => println!("unplug: timer fired"),
        _ = tokio::signal::ctrl_c() => println!("unplug: Ctrl-C"),
    }
    stats.unplugging.store(true, Ordering::SeqCst);
    let t = Instant::now();
    let in_flight = backend.holders().len();
    println!("unplug: revoke_async() with {in_flight} request(s) holding the backend");
    let won = backend.revoke_async().await;
    println!(
        "unplug: done in {:.1} ms (won: {won}); the backend is gone, new requests get ENODEV",
        t.elapsed().as_secs_f64() * 1e3
    );
    assert!(backend.try_access().is_none());

    let (mut ok, mut err) = (0, 0);
    for c in clients {
        let (o, e) = c.await.expect("client");
        ok += o;
        err += e;
    }
    println!(
        "requests: {} served before the unplug, {} in flight at the unplug and finished, {} refused with ENODEV",
        stats.before.load(Ordering::Relaxed),
        stats.in_flight_at_unplug.load(Ordering::Relaxed),
        stats.refused.load(Ordering::Relaxed)
    );
    println!("clients: {ok} OK replies, {err} ENODEV replies, none served by a dropped backend");
    let _ = std::fs::remove_dir_all(&dir);
}
