//! The data path: messages of any size pass in both directions (large ones
//! streamed through, never held whole), COPY in and out, and a client that
//! vanishes in the middle of a message frees its slot and its backend.
mod common;
use common::raw::{self, Raw};
use common::*;
use std::time::{Duration, Instant};

/// Fail instead of hanging.
async fn within<T>(secs: u64, what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {secs} s"))
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// Send `n` bytes up and get them back down, in one statement.
async fn echo(c: &tokio_postgres::Client, n: usize) {
    let data = pattern(n);
    let row = within(
        120,
        &format!("echo of {n} bytes"),
        c.query_one("SELECT $1::bytea", &[&data]),
    )
    .await
    .expect("echo");
    let back: &[u8] = row.get(0);
    assert_eq!(back.len(), n);
    assert!(back == &data[..], "{n} bytes came back changed");
}

/// Simple protocol: an n-byte query text up, an n-byte value down.
async fn simple_both_ways(c: &tokio_postgres::Client, n: usize) {
    let sql = format!("SELECT length('{}')", "y".repeat(n));
    let rows = within(60, "large query text", c.simple_query(&sql))
        .await
        .unwrap();
    let got = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    });
    assert_eq!(got, Some(n.to_string()));
    let rows = within(
        60,
        "large row",
        c.simple_query(&format!("SELECT repeat('x', {n})")),
    )
    .await
    .unwrap();
    let len = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::len),
        _ => None,
    });
    assert_eq!(len, Some(n));
}

#[tokio::test]
async fn one_and_sixteen_megabyte_messages_pass_both_ways() {
    let r = Router::start();
    let c = connect(&r.url("rt_app.acme")).await.unwrap();
    // Control: small messages.
    simple_both_ways(&c, 1000).await;
    echo(&c, 1000).await;
    for n in [512 * 1024, 1 << 20, 5 << 20, 16 << 20] {
        let started = Instant::now();
        simple_both_ways(&c, n).await;
        echo(&c, n).await;
        println!("{n} bytes: {:?}", started.elapsed());
    }
    // The session is still the tenant's and still usable.
    assert_eq!(visible_notes(&c).await, 3);
}

#[tokio::test]
async fn a_256_megabyte_value_passes_both_ways() {
    let r = Router::start();
    let c = connect(&r.url("rt_app.acme")).await.unwrap();
    let started = Instant::now();
    echo(&c, 256 << 20).await;
    println!("256 MiB up and down: {:?}", started.elapsed());
    assert_eq!(visible_notes(&c).await, 3);
}

#[tokio::test]
async fn a_client_vanishing_mid_message_frees_its_slot_and_backend() {
    set_limits("vanisher", "max_connections => 5");
    let r = Router::start();
    let keeper = connect(&r.url("rt_app.vanisher")).await.unwrap();

    // Half of a 2 MB query, then gone.
    let mut up = Raw::connect(r.port, "rt_trust.vanisher", DB).await.unwrap();
    let pid_up = pid_of(&mut up).await;
    let mut q = vec![b'Q'];
    q.extend(((2 << 20) as u32 + 4).to_be_bytes());
    q.extend(vec![b' '; 1 << 20]);
    up.send(&q).await;
    drop(up);

    // A 50 MB row requested, 1 MB read, then gone.
    let mut down = Raw::connect(r.port, "rt_trust.vanisher", DB).await.unwrap();
    let pid_down = pid_of(&mut down).await;
    down.send(&raw::query("SELECT repeat('x', 50000000)")).await;
    let mut got = 0usize;
    while got < 1 << 20 {
        use tokio::io::AsyncReadExt;
        let mut chunk = vec![0u8; 64 * 1024];
        got += within(10, "first MB", down.s.read(&mut chunk))
            .await
            .unwrap();
    }
    drop(down);

    wait_backend_gone(pid_up).await;
    wait_backend_gone(pid_down).await;
    // Only the control connection holds a slot.
    assert!(
        eventually(Duration::from_secs(5), || async {
            tenant_metrics(&r, "vanisher").await["active_connections"] == 1
        })
        .await,
        "slots not freed: {}",
        tenant_metrics(&r, "vanisher").await
    );
    assert_eq!(visible_notes(&keeper).await, 0);
}

async fn pid_of(c: &mut Raw) -> i32 {
    let msgs = c.query("SELECT pg_backend_pid()").await;
    let row = msgs.iter().find(|m| m.0 == b'D').expect("a row");
    // DataRow: column count (2), length (4), text.
    std::str::from_utf8(&row.1[6..]).unwrap().parse().unwrap()
}

#[tokio::test]
async fn copy_in_and_out_with_large_rows() {
    set_limits("copier", "allow_ddl => true");
    let r = Router::start();
    let c = connect(&r.url("rt_app.copier")).await.unwrap();
    c.batch_execute("CREATE TEMP TABLE blobs (n int, b text)")
        .await
        .unwrap();
    // In: 40 rows of 1 KB and 4 rows of 3 MB (each a CopyData frame of its own).
    let mut data = Vec::new();
    for i in 0..40 {
        data.extend(format!("{i}\t{}\n", "a".repeat(1000)).into_bytes());
    }
    for i in 40..44 {
        data.extend(format!("{i}\t{}\n", "b".repeat(3 << 20)).into_bytes());
    }
    let sink = c.copy_in("COPY blobs FROM STDIN").await.unwrap();
    futures_util::pin_mut!(sink);
    use futures_util::SinkExt;
    for chunk in data.chunks(4 << 20) {
        sink.send(bytes::Bytes::copy_from_slice(chunk))
            .await
            .unwrap();
    }
    let n = within(60, "COPY IN", sink.finish()).await.unwrap();
    assert_eq!(n, 44);
    let total: i64 = c
        .query_one("SELECT sum(length(b))::int8 FROM blobs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, 40 * 1000 + 4 * (3 << 20));
    // Out: the same bytes back.
    use futures_util::StreamExt;
    let stream = c
        .copy_out("COPY (SELECT * FROM blobs ORDER BY n) TO STDOUT")
        .await
        .unwrap();
    futures_util::pin_mut!(stream);
    let mut back = Vec::new();
    while let Some(chunk) = within(60, "COPY OUT", stream.next()).await {
        back.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(back.len(), data.len());
    assert!(back == data, "COPY OUT returned what COPY IN stored");
    assert_eq!(visible_notes(&c).await, 0);
}
