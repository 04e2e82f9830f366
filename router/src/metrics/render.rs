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

use super::families::{self, Family};
use super::histogram::{self, Counts};
use super::labels::{Denial, Failure, Refusal};
use super::tenant::{Counters, TenantMetrics, Totals};
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

/// `# HELP` and `# TYPE` lines of a family (help texts are constants
/// without `\` or newlines).
pub fn header(out: &mut Vec<u8>, f: &Family) {
    let (name, help, kind) = (f.name, f.help, f.kind.as_str());
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

/// A counter every tenant has: its tenant family and its all-tenants one.
struct Plain {
    tenant: &'static Family,
    all: &'static Family,
    get: fn(&Counters) -> &AtomicU64,
}

const PLAIN: [Plain; 5] = [
    Plain {
        tenant: &families::CONNECTIONS,
        all: &families::ALL_CONNECTIONS,
        get: |c| &c.connections,
    },
    Plain {
        tenant: &families::STATEMENTS,
        all: &families::ALL_STATEMENTS,
        get: |c| &c.statements,
    },
    Plain {
        tenant: &families::ERRORS,
        all: &families::ALL_ERRORS,
        get: |c| &c.errors,
    },
    Plain {
        tenant: &families::RECEIVED,
        all: &families::ALL_RECEIVED,
        get: |c| &c.bytes_in,
    },
    Plain {
        tenant: &families::SENT,
        all: &families::ALL_SENT,
        get: |c| &c.bytes_out,
    },
];

/// A counter by reason: a tenant's series only for reasons not at 0.
struct ByReason {
    tenant: &'static Family,
    all: &'static Family,
    label: &'static str,
    len: usize,
    name: fn(usize) -> &'static str,
    get: fn(&Counters, usize) -> &AtomicU64,
}

const BY_REASON: [ByReason; 3] = [
    ByReason {
        tenant: &families::REFUSED,
        all: &families::ALL_REFUSED,
        label: "reason",
        len: Refusal::ALL.len(),
        name: |i| Refusal::ALL[i].label(),
        get: |c, i| &c.refused[i],
    },
    ByReason {
        tenant: &families::DENIED,
        all: &families::ALL_DENIED,
        label: "limit",
        len: Denial::ALL.len(),
        name: |i| Denial::ALL[i].label(),
        get: |c, i| &c.denied[i],
    },
    ByReason {
        tenant: &families::AUTH_FAILURES,
        all: &families::ALL_AUTH_FAILURES,
        label: "reason",
        len: Failure::ALL.len(),
        name: |i| Failure::ALL[i].label(),
        get: |c, i| &c.auth_failures[i],
    },
];

/// The tenants' latency histogram family.
pub const DURATION: &str = families::DURATION.name;

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
    let one = |out: &mut Vec<u8>, f: &Family, value: u64| {
        header(out, f);
        sample(out, f.name, &[], value);
    };
    one(out, &families::TENANTS_TRACKED, tenants.len() as u64);
    one(
        out,
        &families::TENANTS_DROPPED_IDLE,
        load(&totals.dropped_idle),
    );
    let active: u64 = tenants.iter().map(|t| u64::from(t.active())).sum();
    one(out, &families::ALL_CONNECTIONS_ACTIVE, active);
    for p in &PLAIN {
        one(out, p.all, load((p.get)(all)));
    }
    for r in &BY_REASON {
        header(out, r.all);
        for i in 0..r.len {
            let labels = [(r.label, (r.name)(i))];
            sample(out, r.all.name, &labels, load((r.get)(all, i)));
        }
    }
    let f = &families::ALL_DURATION;
    header(out, f);
    histogram(out, f.name, None, &totals.all_latency.load());
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
            let f = &families::CONNECTIONS_ACTIVE;
            let name = f.name;
            if first {
                header(out, f);
            }
            for t in part {
                let id = t.metrics().id();
                sample(out, name, &[("tenant", id)], u64::from(t.active()));
            }
        }
        f if f <= PLAIN.len() => {
            let p = &PLAIN[f - 1];
            if first {
                header(out, p.tenant);
            }
            for t in part {
                let m = t.metrics();
                let labels = [("tenant", m.id())];
                sample(out, p.tenant.name, &labels, load((p.get)(m.own())));
            }
        }
        f if f <= PLAIN.len() + BY_REASON.len() => {
            let r = &BY_REASON[f - 1 - PLAIN.len()];
            if first {
                header(out, r.tenant);
            }
            for t in part {
                let m = t.metrics();
                for i in 0..r.len {
                    let n = load((r.get)(m.own(), i));
                    if n > 0 {
                        let labels = [(r.label, (r.name)(i)), ("tenant", m.id())];
                        sample(out, r.tenant.name, &labels, n);
                    }
                }
            }
        }
        _ => {
            if first {
                header(out, &families::DURATION);
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
