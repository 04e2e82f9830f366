//! The tenant families of `/metrics`, written straight from the tenants'
//! atomics into the response's chunks (Prometheus text format 0.0.4): no
//! per-series allocation; a family is written `CHUNK` tenants at a time
//! (`family`), its HELP and TYPE with the first chunk, so the streamed
//! body is one group per family as the format requires.
//!
//! Per tenant the router holds state for: `connections_active`,
//! `connections_total`, `statements_total`, `errors_total`,
//! `client_received_bytes_total`, `client_sent_bytes_total` always (6
//! series); `connections_refused_total{reason}`,
//! `statements_denied_total{limit}` and `auth_failures_total{reason}` only
//! for the reasons whose count is not 0 (up to 4 + 3 + 8); and
//! `statement_duration_seconds` (17 series) only while the tenant holds a
//! histogram place (`histogram`). Aggregates over all tenants are
//! `tenant_router_all_tenants_*`, other names so a `sum()` over a tenant
//! family never counts anything twice.

use super::histogram::{self, Counts};
use super::tenant::{Counters, TenantMetrics, Totals};
use super::{Denial, Refusal};
use crate::auth::failure::Failure;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// The `tenant` label of the histogram of tenants without a place of their
/// own: not a valid tenant id (ids start with a letter or digit), so it
/// never collides with one.
pub const OTHER: &str = "_other";

/// What a tenant's state gives the renderer.
pub trait TenantSource {
    fn metrics(&self) -> &TenantMetrics;
    /// Open client connections now.
    fn active(&self) -> u32;
}

impl<X: TenantSource> TenantSource for std::sync::Arc<X> {
    fn metrics(&self) -> &TenantMetrics {
        (**self).metrics()
    }

    fn active(&self) -> u32 {
        (**self).active()
    }
}

/// What a scrape holds of a tenant until it renders it: a `Weak` pointer,
/// so that a scrape whose client stops reading keeps no tenant's state
/// alive (the sweep drops it; the scrape skips it).
pub trait ScrapeEntry {
    type Live: TenantSource;
    fn live(&self) -> Option<Self::Live>;
}

impl<X: TenantSource> ScrapeEntry for std::sync::Weak<X> {
    type Live = std::sync::Arc<X>;

    fn live(&self) -> Option<std::sync::Arc<X>> {
        self.upgrade()
    }
}

/// `# HELP` and `# TYPE` lines (help texts are constants without `\` or
/// newlines).
pub fn header(out: &mut Vec<u8>, name: &str, help: &str, kind: &str) {
    for part in [
        "# HELP ",
        name,
        " ",
        help,
        "\n# TYPE ",
        name,
        " ",
        kind,
        "\n",
    ] {
        out.extend_from_slice(part.as_bytes());
    }
}

/// A label value, escaped as the text format requires (`\`, `"`, newline).
pub fn escape(out: &mut Vec<u8>, value: &str) {
    for b in value.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
}

/// `name` `suffix` `{k="v",...} ` (the value follows).
fn series(out: &mut Vec<u8>, name: &str, suffix: &str, labels: &[(&str, &str)]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(suffix.as_bytes());
    if !labels.is_empty() {
        out.push(b'{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b"=\"");
            escape(out, v);
            out.push(b'"');
        }
        out.push(b'}');
    }
    out.push(b' ');
}

/// One sample line with an integer value.
pub fn sample(out: &mut Vec<u8>, name: &str, labels: &[(&str, &str)], value: u64) {
    series(out, name, "", labels);
    // Writing into a Vec cannot fail.
    let _ = writeln!(out, "{value}");
}

/// One line of a histogram.
fn histogram_line(
    out: &mut Vec<u8>,
    name: &str,
    suffix: &str,
    tenant: Option<&str>,
    le: Option<&str>,
    value: impl std::fmt::Display,
) {
    match (tenant, le) {
        (Some(t), Some(le)) => series(out, name, suffix, &[("tenant", t), ("le", le)]),
        (Some(t), None) => series(out, name, suffix, &[("tenant", t)]),
        (None, Some(le)) => series(out, name, suffix, &[("le", le)]),
        (None, None) => series(out, name, suffix, &[]),
    }
    let _ = writeln!(out, "{value}");
}

/// One histogram's 17 series, with a `tenant` label or none.
pub fn histogram(out: &mut Vec<u8>, name: &str, tenant: Option<&str>, c: &Counts) {
    let mut cumulative = 0;
    for (i, le) in histogram::LE.iter().enumerate() {
        cumulative += c.buckets[i];
        histogram_line(out, name, "_bucket", tenant, Some(le), cumulative);
    }
    let total = c.count();
    histogram_line(out, name, "_bucket", tenant, Some("+Inf"), total);
    histogram_line(out, name, "_sum", tenant, None, c.sum);
    histogram_line(out, name, "_count", tenant, None, total);
}

/// A counter every tenant has: (tenant family, all-tenants family, help).
struct Plain {
    tenant: &'static str,
    all: &'static str,
    help: &'static str,
    get: fn(&Counters) -> &AtomicU64,
}

const PLAIN: [Plain; 5] = [
    Plain {
        tenant: "tenant_router_connections_total",
        all: "tenant_router_all_tenants_connections_total",
        help: "Client connections accepted for the tenant (context set).",
        get: |c| &c.connections,
    },
    Plain {
        tenant: "tenant_router_statements_total",
        all: "tenant_router_all_tenants_statements_total",
        help: "Units sent by the tenant's clients (Query, Execute and FunctionCall messages).",
        get: |c| &c.statements,
    },
    Plain {
        tenant: "tenant_router_errors_total",
        all: "tenant_router_all_tenants_errors_total",
        help: "Error responses sent to the tenant's clients (from PostgreSQL or the router).",
        get: |c| &c.errors,
    },
    Plain {
        tenant: "tenant_router_client_received_bytes_total",
        all: "tenant_router_all_tenants_client_received_bytes_total",
        help: "Bytes relayed from the tenant's clients to PostgreSQL.",
        get: |c| &c.bytes_in,
    },
    Plain {
        tenant: "tenant_router_client_sent_bytes_total",
        all: "tenant_router_all_tenants_client_sent_bytes_total",
        help: "Bytes relayed from PostgreSQL to the tenant's clients.",
        get: |c| &c.bytes_out,
    },
];

/// A counter by reason: a tenant's series only for reasons not at 0.
struct ByReason {
    tenant: &'static str,
    all: &'static str,
    help: &'static str,
    label: &'static str,
    len: usize,
    name: fn(usize) -> &'static str,
    get: fn(&Counters, usize) -> &AtomicU64,
}

const BY_REASON: [ByReason; 3] = [
    ByReason {
        tenant: "tenant_router_connections_refused_total",
        all: "tenant_router_all_tenants_connections_refused_total",
        help: "Client connections of the tenant refused, by reason.",
        label: "reason",
        len: Refusal::ALL.len(),
        name: |i| Refusal::ALL[i].label(),
        get: |c, i| &c.refused[i],
    },
    ByReason {
        tenant: "tenant_router_statements_denied_total",
        all: "tenant_router_all_tenants_statements_denied_total",
        help: "Statements refused or stopped by a tenant limit, by limit.",
        label: "limit",
        len: Denial::ALL.len(),
        name: |i| Denial::ALL[i].label(),
        get: |c, i| &c.denied[i],
    },
    ByReason {
        tenant: "tenant_router_auth_failures_total",
        all: "tenant_router_all_tenants_auth_failures_total",
        help: "Failed authentications checked by the router for the tenant, by reason.",
        label: "reason",
        len: Failure::ALL.len(),
        name: |i| Failure::ALL[i].label(),
        get: |c, i| &c.auth_failures[i],
    },
];

pub const DURATION: &str = "tenant_router_statement_duration_seconds";
const DURATION_HELP: &str =
    "Time from a unit (Query, Execute, FunctionCall) reaching the router to its answer.";
const ALL_DURATION: &str = "tenant_router_all_tenants_statement_duration_seconds";

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Tenants rendered into one chunk of a family.
pub const CHUNK: usize = 512;
/// The tenant families, in the order they are written.
pub const FAMILIES: usize = 1 + PLAIN.len() + BY_REASON.len() + 1;

/// Bytes a chunk of `tenants` (ids of `id_bytes` in all) takes, about: a
/// chunk's buffer is made this big once.
pub fn estimate(tenants: usize, id_bytes: usize) -> usize {
    // A series is ~60 bytes plus the id.
    256 + tenants * 64 + id_bytes
}

/// The aggregate families (every series, always).
pub fn aggregates<T: TenantSource>(out: &mut Vec<u8>, totals: &Totals, tenants: &[T]) {
    let all = &totals.all;
    header(
        out,
        "tenant_router_tenants_tracked",
        "Tenants whose state (counters, series) the router holds now.",
        "gauge",
    );
    sample(
        out,
        "tenant_router_tenants_tracked",
        &[],
        tenants.len() as u64,
    );
    header(
        out,
        "tenant_router_tenants_dropped_idle_total",
        "Tenants whose state was dropped after metrics.tenant_idle_ms without a connection.",
        "counter",
    );
    sample(
        out,
        "tenant_router_tenants_dropped_idle_total",
        &[],
        load(&totals.dropped_idle),
    );
    header(
        out,
        "tenant_router_all_tenants_connections_active",
        "Open client connections of all tenants.",
        "gauge",
    );
    let active: u64 = tenants.iter().map(|t| u64::from(t.active())).sum();
    sample(
        out,
        "tenant_router_all_tenants_connections_active",
        &[],
        active,
    );
    for p in &PLAIN {
        header(out, p.all, p.help, "counter");
        sample(out, p.all, &[], load((p.get)(all)));
    }
    for r in &BY_REASON {
        header(out, r.all, r.help, "counter");
        for i in 0..r.len {
            sample(out, r.all, &[(r.label, (r.name)(i))], load((r.get)(all, i)));
        }
    }
    header(out, ALL_DURATION, DURATION_HELP, "histogram");
    histogram(out, ALL_DURATION, None, &totals.all_latency.load());
}

/// Family `f` (< `FAMILIES`) of `tenants[from..to]`: its HELP and TYPE
/// first (`from` 0), the `_other` histogram last (`to` at the end).
pub fn family<T: TenantSource>(
    out: &mut Vec<u8>,
    totals: &Totals,
    tenants: &[T],
    f: usize,
    from: usize,
    to: usize,
) {
    let part = tenants.get(from..to).unwrap_or_default();
    family_part(out, totals, part, f, from == 0, to >= tenants.len());
}

/// Family `f` of `part`, a chunk of the tenants: HELP and TYPE when it is
/// the `first`, the `_other` histogram when it is the `last`.
pub fn family_part<T: TenantSource>(
    out: &mut Vec<u8>,
    totals: &Totals,
    part: &[T],
    f: usize,
    first: bool,
    last: bool,
) {
    match f {
        0 => {
            let name = "tenant_router_connections_active";
            if first {
                header(out, name, "Open client connections of the tenant.", "gauge");
            }
            for t in part {
                let id = t.metrics().id();
                sample(out, name, &[("tenant", id)], u64::from(t.active()));
            }
        }
        f if f <= PLAIN.len() => {
            let p = &PLAIN[f - 1];
            if first {
                header(out, p.tenant, p.help, "counter");
            }
            for t in part {
                let m = t.metrics();
                sample(out, p.tenant, &[("tenant", m.id())], load((p.get)(m.own())));
            }
        }
        f if f <= PLAIN.len() + BY_REASON.len() => {
            let r = &BY_REASON[f - 1 - PLAIN.len()];
            if first {
                header(out, r.tenant, r.help, "counter");
            }
            for t in part {
                let m = t.metrics();
                for i in 0..r.len {
                    let n = load((r.get)(m.own(), i));
                    if n > 0 {
                        let labels = [(r.label, (r.name)(i)), ("tenant", m.id())];
                        sample(out, r.tenant, &labels, n);
                    }
                }
            }
        }
        _ => {
            if first {
                header(out, DURATION, DURATION_HELP, "histogram");
            }
            for t in part {
                let m = t.metrics();
                if let Some(c) = m.own_histogram() {
                    histogram(out, DURATION, Some(m.id()), &c);
                }
            }
            if last {
                histogram(out, DURATION, Some(OTHER), &totals.other_latency.load());
            }
        }
    }
}

/// The aggregate families and every tenant family, in one buffer.
pub fn tenants<T: TenantSource>(out: &mut Vec<u8>, totals: &Totals, tenants: &[T]) {
    aggregates(out, totals, tenants);
    for f in 0..FAMILIES {
        family(out, totals, tenants, f, 0, tenants.len());
    }
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
