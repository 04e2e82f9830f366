//! A fault-injecting TCP proxy for the integration tests (as Toxiproxy is
//! for PgDog's and PgCat's): put between the router and PostgreSQL, or
//! between a client and the router. It binds port 0 and forwards every
//! connection it accepts to its target; a test turns faults on and off
//! while connections are open:
//!
//! - `latency(dir, d)`: each chunk read in direction `dir` is held `d`
//!   before it is forwarded;
//! - `cut_after(dir, n)`: every connection (open ones and new ones) closes
//!   both sides (FIN) once `n` more bytes went in direction `dir`: a cut
//!   in the middle of a message;
//! - `stall()`: half-open: bytes are read (the sender sees them accepted)
//!   and nothing is forwarded, either way, until the fault is lifted (the
//!   bytes held are then forwarded);
//! - `reset()`: every connection, open and new, is reset (RST, SO_LINGER 0)
//!   on both sides;
//! - `lift()`: no fault from now on.
//!
//! `open()` counts the connections open through it, so a test can check
//! that what the router opened was closed.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A direction through the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// From the side that connected (client, or the router) to the target.
    Up,
    /// From the target back to the side that connected.
    Down,
}

#[derive(Clone, Debug, Default)]
struct Faults {
    latency: [Duration; 2],
    /// (generation, bytes) per direction: a new generation restarts the
    /// count on every connection.
    cut: [Option<(u64, u64)>; 2],
    stall: bool,
    reset: bool,
    generation: u64,
}

fn ix(dir: Dir) -> usize {
    match dir {
        Dir::Up => 0,
        Dir::Down => 1,
    }
}

struct Shared {
    target: SocketAddr,
    faults: watch::Sender<Faults>,
    open: AtomicUsize,
    accepted: AtomicUsize,
    /// Bytes read from each direction's source, forwarded or not.
    received: [AtomicU64; 2],
}

/// The proxy; its accept loop and connections end when it is dropped.
pub struct FaultProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Open connections end too: a reset reaches every pump.
        self.shared.faults.send_modify(|f| f.reset = true);
    }
}

impl FaultProxy {
    /// A proxy on 127.0.0.1, port 0, forwarding to `target`.
    pub async fn start(target: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (faults, _) = watch::channel(Faults::default());
        let shared = Arc::new(Shared {
            target,
            faults,
            open: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
            received: [AtomicU64::new(0), AtomicU64::new(0)],
        });
        let s = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                s.accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(conn, s.clone()));
            }
        });
        FaultProxy {
            addr,
            shared,
            accept,
        }
    }

    /// A proxy in front of the test cluster's TCP port.
    pub async fn to_postgres() -> FaultProxy {
        let port = super::cluster().port;
        FaultProxy::start(([127, 0, 0, 1], port).into()).await
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    fn change(&self, f: impl FnOnce(&mut Faults)) {
        self.shared.faults.send_modify(|faults| {
            faults.generation += 1;
            f(faults)
        });
    }

    pub fn latency(&self, dir: Dir, d: Duration) {
        self.change(|f| f.latency[ix(dir)] = d);
    }

    pub fn cut_after(&self, dir: Dir, bytes: u64) {
        self.change(|f| f.cut[ix(dir)] = Some((f.generation, bytes)));
    }

    /// Cut every connection holding bytes a stall kept back (and every
    /// other one at its next byte) now: the stall ends in a cut.
    pub fn cut_now(&self) {
        self.change(|f| {
            f.stall = false;
            f.cut = [Some((f.generation, 0)), Some((f.generation, 0))];
        });
    }

    pub fn stall(&self) {
        self.change(|f| f.stall = true);
    }

    pub fn reset(&self) {
        self.change(|f| f.reset = true);
    }

    pub fn lift(&self) {
        self.change(|f| {
            let generation = f.generation;
            *f = Faults::default();
            f.generation = generation;
        });
    }

    /// Bytes read so far in direction `dir` (forwarded or held).
    pub fn received(&self, dir: Dir) -> u64 {
        self.shared.received[ix(dir)].load(Ordering::SeqCst)
    }

    /// Connections open through the proxy now.
    pub fn open(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Connections accepted since the proxy started.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Wait (up to `within`) until at most `n` connections are open.
    pub async fn wait_open_at_most(&self, n: usize, within: Duration) -> bool {
        super::eventually(within, || async { self.open() <= n }).await
    }
}

/// How one direction ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Its source closed (or failed): the other side was half-closed.
    Eof,
    /// A cut: both sides are closed.
    Cut,
    /// A reset: both sides are reset.
    Reset,
}

struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve(mut a: TcpStream, shared: Arc<Shared>) {
    shared.open.fetch_add(1, Ordering::SeqCst);
    let _guard = OpenGuard(shared.clone());
    let mut rx = shared.faults.subscribe();
    let mut b = match TcpStream::connect(shared.target).await {
        Ok(b) if !rx.borrow().reset => b,
        _ => {
            let _ = a.set_zero_linger();
            return;
        }
    };
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    let end = {
        let (ar, aw) = a.split();
        let (br, bw) = b.split();
        let up = pump(ar, bw, Dir::Up, &shared);
        let down = pump(br, aw, Dir::Down, &shared);
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            let e = tokio::select! {
                e = &mut up, if !up_done => { up_done = true; e }
                e = &mut down, if !down_done => { down_done = true; e }
                // A reset reaches a connection whose pumps wait to write.
                r = rx.wait_for(|f| f.reset) => {
                    if r.is_ok() { End::Reset } else { End::Eof }
                }
            };
            if e != End::Eof || (up_done && down_done) {
                break e;
            }
        }
    };
    if end == End::Reset {
        let _ = a.set_zero_linger();
        let _ = b.set_zero_linger();
    }
}

async fn pump(
    mut from: tokio::net::tcp::ReadHalf<'_>,
    mut to: tokio::net::tcp::WriteHalf<'_>,
    dir: Dir,
    shared: &Shared,
) -> End {
    let d = ix(dir);
    let mut rx = shared.faults.subscribe();
    let mut held: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    // The cut generation this connection counts for, and bytes sent since.
    let mut cut_seen = None;
    let mut sent: u64 = 0;
    let mut source_open = true;
    loop {
        let f = rx.borrow_and_update().clone();
        if f.reset {
            return End::Reset;
        }
        if !f.stall && !held.is_empty() {
            if !f.latency[d].is_zero() {
                tokio::time::sleep(f.latency[d]).await;
            }
            let mut n = held.len();
            let mut cut_now = false;
            if let Some((generation, limit)) = f.cut[d] {
                if cut_seen != Some(generation) {
                    cut_seen = Some(generation);
                    sent = 0;
                }
                let left = limit.saturating_sub(sent) as usize;
                if n >= left {
                    n = left;
                    cut_now = true;
                }
            }
            if to.write_all(&held[..n]).await.is_err() {
                return End::Eof;
            }
            sent += n as u64;
            held.drain(..n);
            if cut_now {
                let _ = to.flush().await;
                return End::Cut;
            }
            continue;
        }
        if !source_open {
            if held.is_empty() {
                let _ = to.shutdown().await;
                return End::Eof;
            }
            // Held bytes wait for the fault to lift.
            if rx.changed().await.is_err() {
                return End::Eof;
            }
            continue;
        }
        tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => source_open = false,
                Ok(n) => {
                    shared.received[d].fetch_add(n as u64, Ordering::SeqCst);
                    held.extend_from_slice(&buf[..n]);
                }
            },
            c = rx.changed() => if c.is_err() { return End::Eof },
        }
    }
}

/// A router whose main upstream is `proxy` (`extra`: top-level TOML lines,
/// then sections).
pub fn router_via(proxy: &FaultProxy, extra: &str) -> super::Router {
    let c = super::cluster();
    let from = format!("upstream = \"127.0.0.1:{}\"", c.port);
    let to = format!("upstream = \"127.0.0.1:{}\"", proxy.port());
    super::Router::start_edited(extra, &super::CatalogSetup::default(), &move |t| {
        assert!(t.contains(&from), "upstream: {t}");
        t.replacen(&from, &to, 1)
    })
}

/// `/pools`' entry of `pool` (`role@database`), or Null.
pub async fn pool_of(r: &super::Router, pool: &str) -> serde_json::Value {
    let all: serde_json::Value = reqwest::get(r.admin("/pools"))
        .await
        .expect("admin API")
        .json()
        .await
        .expect("JSON");
    all["pools"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["pool"] == pool).cloned())
        .unwrap_or(serde_json::Value::Null)
}

/// `GET /ready`: status and body.
pub async fn ready(r: &super::Router) -> (u16, serde_json::Value) {
    let resp = reqwest::get(r.admin("/ready")).await.expect("admin API");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON"))
}

/// Wait (up to `within`) until `/ready` answers `status`; its last body.
pub async fn wait_ready(r: &super::Router, status: u16, within: Duration) -> serde_json::Value {
    let start = std::time::Instant::now();
    loop {
        let (s, body) = ready(r).await;
        if s == status {
            return body;
        }
        assert!(
            start.elapsed() < within,
            "/ready is still {s}, not {status}, after {within:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait (up to 10 s) until `pool` has no backend lent out and at most
/// `open` open; then PostgreSQL shows exactly its open backends for `role`
/// (nothing leaked on the server either).
pub async fn wait_pool_settled(r: &super::Router, pool: &str, role: &str, open: u64) {
    let settled = super::eventually(Duration::from_secs(10), || async {
        let p = pool_of(r, pool).await;
        p["active"] == 0 && p["waiting"] == 0 && p["open"].as_u64().unwrap_or(0) <= open
    })
    .await;
    assert!(
        settled,
        "pool {pool} did not settle: {}",
        pool_of(r, pool).await
    );
    let matches = super::eventually(Duration::from_secs(10), || async {
        let p = pool_of(r, pool).await;
        let server = super::wire::backends(role);
        p["open"].as_i64() == Some(server)
    })
    .await;
    assert!(
        matches,
        "PostgreSQL shows {} backends of {role}, the pool {}",
        super::wire::backends(role),
        pool_of(r, pool).await
    );
}

/// A router whose catalog connection goes through `proxy` (TCP, as the
/// password role `rt_router_tcp`); its upstream is the cluster itself.
pub fn router_with_catalog_via(proxy: &FaultProxy, extra: &str) -> super::Router {
    let c = super::cluster();
    static ROLE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    ROLE.get_or_init(|| {
        super::admin_sql(&format!(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rt_router_tcp') THEN \
         CREATE ROLE rt_router_tcp LOGIN PASSWORD '{}' IN ROLE tenant_router; END IF; END $$",
        super::PASSWORD
    ));
    });
    let cat = super::CatalogSetup {
        user: "rt_router_tcp",
        tcp_host: Some("127.0.0.1"),
        ..Default::default()
    };
    let from = format!(" port={} user=rt_router_tcp ", c.port);
    let to = format!(" port={} user=rt_router_tcp ", proxy.port());
    super::Router::start_edited(extra, &cat, &move |t| {
        assert!(t.contains(&from), "catalog url: {t}");
        t.replacen(&from, &to, 1)
    })
}

/// This process has the suite `name` to itself on the test cluster until
/// it exits (a lock file of the cluster's, flock): another run of the same
/// suite on the same cluster waits. Its tests use fixed roles, and
/// `wait_pool_settled` counts a role's backends on the whole server (and
/// faults_edges turns the cluster's TLS on and off): two runs at once would
/// see each other's backends.
pub fn exclusive(name: &str) {
    use std::os::fd::AsRawFd;
    static HELD: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();
    let c = super::cluster();
    let dir = std::path::Path::new(&c.key_file)
        .parent()
        .expect("cluster dir");
    let lock = std::fs::File::create(dir.join(format!("{name}.lock"))).expect("lock file");
    // flock (File::lock is newer than the workspace's MSRV); released when
    // the process exits, however it ends.
    // SAFETY: a valid open descriptor; flock takes no pointers.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
    assert!(HELD.set(lock).is_ok(), "one suite per process");
}
