//! Limits across several routers (docs/src/scaling-out/index.md,
//! docs/src/scaling-out/several-routers.md). With `fleet.shared_connection_limits`, a tenant's
//! `max_connections` is counted for every router at once in the catalog
//! server's shared memory (pg_tenant's `tenant.fleet_acquire`): where all
//! routers meet already, so no new service. Each login of a tenant with
//! `max_connections` takes a lease there after its place in this router
//! (`limits`), and gives it back when its session ends (the lease rides in
//! the connection slot). The lease connection is `worker`'s; what a
//! session holds and the messages are `lease`'s.
//!
//! QPS limits stay per router: with `fleet.routers = N` each router
//! enforces its share, ceil(qps_limit / N) (`limits`).

pub mod lease;
mod worker;

use crate::config::{FleetSettings, LeaseLoss};
use crate::limits::{ConnectionSlot, LimitError};
use lease::{Answer, LeaseError, Msg};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, oneshot};

/// The router's side of the fleet's connection counts.
pub struct Fleet {
    /// None: `fleet.shared_connection_limits` is off.
    tx: Option<mpsc::UnboundedSender<Msg>>,
    /// Whether the lease connection is up.
    up: Arc<AtomicBool>,
}

impl Fleet {
    /// Off: every login is admitted by this router's counts alone.
    pub fn off() -> Fleet {
        Fleet {
            tx: None,
            up: Arc::new(AtomicBool::new(false)),
        }
    }

    /// On: start the lease worker (inside a tokio runtime) on its own
    /// connection to `url`.
    pub fn start(catalog: &crate::config::Catalog, tls: &crate::tls::TlsSettings) -> Fleet {
        let (tx, rx) = mpsc::unbounded_channel();
        let up = Arc::new(AtomicBool::new(false));
        let tls = tls.client.clone().map(|c| (c, tls.upstream_tls));
        let w = worker::Worker::new(
            catalog.url.clone(),
            catalog.password.clone(),
            tls,
            rx,
            tx.downgrade(),
            up.clone(),
        );
        tokio::spawn(w.run());
        Fleet { tx: Some(tx), up }
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Whether the lease connection is up (false when off).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Admit the login that holds `slot` (its place in this router, taken
    /// already) for the fleet: take a lease of `tenant` under `max` and
    /// put it in the slot. Nothing to do when off or `max` is 0
    /// (unlimited). Refused: `TooManyConnections`, as a local refusal.
    /// Lease connection down or slow (`settings.lease_timeout_ms`):
    /// `settings.on_lease_loss`.
    pub async fn admit(
        &self,
        slot: &mut ConnectionSlot,
        tenant: &str,
        max: i32,
        settings: &FleetSettings,
    ) -> Result<(), LimitError> {
        let Some(tx) = &self.tx else { return Ok(()) };
        if max <= 0 {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        let sent = tx.send(Msg::Acquire {
            tenant: tenant.to_owned(),
            max,
            reply,
        });
        let answer = match sent {
            Err(_) => Answer::Unavailable(LeaseError::Stopped),
            Ok(()) => match tokio::time::timeout(settings.lease_timeout(), answer).await {
                Ok(Ok(a)) => a,
                Ok(Err(_)) => Answer::Unavailable(LeaseError::Stopped),
                Err(_) => Answer::Unavailable(LeaseError::Slow(settings.lease_timeout_ms)),
            },
        };
        let too_many = || LimitError::TooManyConnections {
            tenant: tenant.to_owned(),
            max,
        };
        match answer {
            Answer::Granted(lease) => {
                slot.attach(lease);
                Ok(())
            }
            Answer::Refused => Err(too_many()),
            Answer::Unavailable(why) => match settings.on_lease_loss {
                LeaseLoss::Refuse => {
                    tracing::warn!(tenant, reason = %why, "fleet: login refused, its connection limit cannot be checked (fleet.on_lease_loss = refuse)");
                    Err(LimitError::LimitUncheckable {
                        tenant: tenant.to_owned(),
                        reason: why.to_string(),
                    })
                }
                LeaseLoss::LocalShare => {
                    let share = settings.share(max);
                    // The slot counts this login already.
                    if slot.counters().active() > share as u32 {
                        tracing::info!(tenant, share, reason = %why, "fleet: login refused by this router's share of max_connections");
                        return Err(too_many());
                    }
                    if tx
                        .send(Msg::Adopt {
                            tenant: tenant.to_owned(),
                        })
                        .is_ok()
                    {
                        slot.attach(lease::Lease::new(tenant, tx.clone()));
                    }
                    Ok(())
                }
            },
        }
    }
}

/// The client listener: `TcpListener::bind`'s socket (SO_REUSEADDR on
/// Unix), with SO_REUSEPORT when `reuse_port` (`fleet.reuse_port`), so
/// several routers on one host can listen on the same address.
pub fn listen(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_listeners_share_an_address_only_with_reuse_port() {
        let a = listen("127.0.0.1:0".parse().unwrap(), true).expect("first");
        let addr = a.local_addr().unwrap();
        let b = listen(addr, true).expect("a second router on the same address");
        assert_eq!(b.local_addr().unwrap(), addr);
        let plain = listen("127.0.0.1:0".parse().unwrap(), false).expect("plain");
        let e = listen(plain.local_addr().unwrap(), false).expect_err("taken");
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
    }
}
