//! The catalog worker's supervisor: it runs the worker as a task of its
//! own and, if that task panics, starts it again after a backoff (doubling
//! from `Backoff::min` to `Backoff::max`, back to `min` after a worker that
//! lived `Backoff::healthy`). The request queue outlives the worker: the
//! requests a dead worker was serving get an error (their reply senders
//! are dropped with it), the ones that arrive while it is down get one at
//! once (`fail`), and the ones still queued are served by the next worker.
//! So no login waits on a worker that is gone.
//!
//! A worker that returns (every request sender is gone, or the catalog
//! itself) ends the supervisor too.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Mutex, OwnedMutexGuard};

/// How long to wait before starting a worker again.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
    /// A worker that lived this long was healthy: the next wait is `min`.
    pub healthy: Duration,
}

impl Backoff {
    pub const DEFAULT: Backoff = Backoff {
        min: Duration::from_millis(100),
        max: Duration::from_secs(5),
        healthy: Duration::from_secs(30),
    };
}

/// The queue a worker serves, held by one worker at a time.
pub type Queue<R> = OwnedMutexGuard<mpsc::Receiver<R>>;

/// Run `start(queue)` as a task, again after each panic; `died` is called
/// when a worker died, `fail` answers each request that arrives while
/// none runs.
pub async fn supervise<R, F, W>(
    rx: mpsc::Receiver<R>,
    mut start: F,
    died: impl Fn(),
    fail: impl Fn(R),
    backoff: Backoff,
) where
    R: Send + 'static,
    F: FnMut(Queue<R>) -> W,
    W: Future<Output = ()> + Send + 'static,
{
    let rx = Arc::new(Mutex::new(rx));
    let mut wait = backoff.min;
    loop {
        let began = Instant::now();
        let worker = tokio::spawn(start(rx.clone().lock_owned().await));
        match worker.await {
            Ok(()) => return,
            // The runtime is shutting down.
            Err(e) if e.is_cancelled() => return,
            Err(e) => {
                tracing::error!(error = %e, restart_in_ms = wait.as_millis() as u64, "catalog worker died: restarting it");
            }
        }
        died();
        if began.elapsed() >= backoff.healthy {
            wait = backoff.min;
        }
        let mut queue = rx.lock().await;
        let pause = tokio::time::sleep(wait);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                req = queue.recv() => match req {
                    Some(r) => fail(r),
                    None => return,
                },
            }
        }
        wait = (wait * 2).min(backoff.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::oneshot;

    type Req = (u32, oneshot::Sender<Result<u32, &'static str>>);

    const FAST: Backoff = Backoff {
        min: Duration::from_millis(50),
        max: Duration::from_millis(200),
        healthy: Duration::from_secs(60),
    };

    /// A worker that answers requests, and panics on request 0.
    async fn worker(mut q: Queue<Req>) {
        while let Some((n, tx)) = q.recv().await {
            if n == 0 {
                panic!("request 0 kills the worker");
            }
            let _ = tx.send(Ok(n * 10));
        }
    }

    async fn ask(tx: &mpsc::Sender<Req>, n: u32) -> Result<u32, &'static str> {
        let (reply, answer) = oneshot::channel();
        tx.send((n, reply)).await.map_err(|_| "queue closed")?;
        answer.await.map_err(|_| "dropped")?
    }

    #[tokio::test]
    async fn a_worker_that_dies_is_restarted_and_no_request_hangs() {
        let (tx, rx) = mpsc::channel::<Req>(16);
        let starts = Arc::new(AtomicUsize::new(0));
        let deaths = Arc::new(AtomicUsize::new(0));
        let (s, d) = (starts.clone(), deaths.clone());
        let sup = tokio::spawn(supervise(
            rx,
            move |q| {
                s.fetch_add(1, Ordering::SeqCst);
                worker(q)
            },
            move || {
                d.fetch_add(1, Ordering::SeqCst);
            },
            |(_, reply): Req| {
                let _ = reply.send(Err("restarting"));
            },
            FAST,
        ));
        assert_eq!(ask(&tx, 1).await, Ok(10));
        // The request that kills it gets an error, not a hang.
        let within = |f| tokio::time::timeout(Duration::from_secs(5), f);
        assert_eq!(within(ask(&tx, 0)).await, Ok(Err("dropped")));
        // While it is down: an error at once.
        let meanwhile = within(ask(&tx, 2)).await.expect("answered");
        assert!(
            meanwhile == Err("restarting") || meanwhile == Ok(20),
            "{meanwhile:?}"
        );
        tokio::time::sleep(FAST.min * 2).await;
        assert_eq!(within(ask(&tx, 3)).await, Ok(Ok(30)), "restarted");
        assert_eq!(starts.load(Ordering::SeqCst), 2);
        assert_eq!(deaths.load(Ordering::SeqCst), 1);
        // It dies again: restarted again, after a longer wait.
        assert_eq!(within(ask(&tx, 0)).await, Ok(Err("dropped")));
        tokio::time::sleep(FAST.max).await;
        assert_eq!(within(ask(&tx, 4)).await, Ok(Ok(40)));
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        // Every sender gone: the worker returns and the supervisor ends.
        drop(tx);
        tokio::time::timeout(Duration::from_secs(5), sup)
            .await
            .expect("ended")
            .expect("no panic");
        assert_eq!(deaths.load(Ordering::SeqCst), 2);
    }
}
