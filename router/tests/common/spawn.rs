//! Starting a `tenant-router` process on ports the OS picks: the config
//! names port 0, the router reports the bound addresses in its
//! "tenant-router listening" line, and the harness reads them from there.
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A tag no other router of this test run has (the process id and a
/// counter).
pub fn unique_tag() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}_{n}", std::process::id())
}

/// A `tenant-router` process started by [`spawn_router`].
pub struct Started {
    pub child: Child,
    pub port: u16,
    pub admin_port: u16,
    pub log: Arc<Mutex<Vec<String>>>,
}

/// The text of a log line without its ANSI colour sequences.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ parameters, then one final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The port of `key=host:port` in a log line.
fn logged_port(line: &str, key: &str) -> Option<u16> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .map(|a| a.port())
}

/// Start `tenant-router -c cfg` whose `listen` and `admin_listen` name
/// port 0: the OS picks the ports, so routers never race for one. Waits
/// (bounded) for the router's "tenant-router listening" line, takes the
/// bound ports from it and writes them into the config file, so that
/// tools reading the file (the move tool reaches the admin API) and a
/// reload of it see the addresses in use.
pub fn spawn_router(cfg: &std::path::Path, env: &[(&str, &str)]) -> Started {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tenant-router"))
        .arg("-c")
        .arg(cfg)
        .env("TENANT_ROUTER_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tenant-router");
    let log = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().expect("stderr");
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(mut l) = sink.lock() {
                l.push(line);
            }
        }
    });
    let start = Instant::now();
    let (port, admin_port) = loop {
        let found = log.lock().ok().and_then(|l| {
            l.iter()
                .map(|line| strip_ansi(line))
                .find(|line| line.contains("tenant-router listening"))
                .map(|line| (logged_port(&line, "listen"), logged_port(&line, "admin")))
        });
        if let Some((Some(port), admin)) = found {
            break (port, admin.unwrap_or(0));
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Let the reader thread take the last lines.
            std::thread::sleep(Duration::from_millis(50));
            panic!(
                "tenant-router exited with {status}: {:?}",
                log.lock().map(|l| l.join("\n"))
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "tenant-router did not report its listening address: {:?}",
            log.lock().map(|l| l.join("\n"))
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(cfg).expect("read config");
    let text = text
        .lines()
        .map(|l| {
            if l.starts_with("listen = ") && l.ends_with(":0\"") {
                format!("{}:{port}\"", &l[..l.len() - 3])
            } else if l.starts_with("admin_listen = ") && l.ends_with(":0\"") {
                format!("{}:{admin_port}\"", &l[..l.len() - 3])
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(cfg, text + "\n").expect("write config");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .expect("the router accepts on the port it reported");
    Started {
        child,
        port,
        admin_port,
        log,
    }
}
