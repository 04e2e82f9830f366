//! The pool's rules over a stand-in backend type (no sockets).

use super::*;

/// A stand-in backend: the tenant it serves is its number's parity.
impl Affine for u32 {
    fn serves(&self, tenant: &str) -> bool {
        (tenant == "even") == self.is_multiple_of(2)
    }
}

fn state(size: usize) -> State<u32> {
    State::new(size, 0)
}

fn waiter(st: &mut State<u32>, tenant: &str, share: usize) -> oneshot::Receiver<Grant<u32>> {
    let (tx, rx) = oneshot::channel();
    st.waiting.push_back(Waiter {
        tenant: tenant.into(),
        share,
        tx,
        skipped: 0,
    });
    rx
}

fn give_back(st: &mut State<u32>, tenant: &str, b: u32) {
    st.unhold(tenant);
    st.idle.push(Idle {
        backend: b,
        since: Instant::now(),
    });
    st.dispatch();
}

#[test]
fn places_up_to_the_size_then_nothing() {
    let mut st = state(2);
    assert!(matches!(st.grant("a", 10), Some(Grant::Open)));
    assert!(matches!(st.grant("b", 10), Some(Grant::Open)));
    assert!(st.grant("c", 10).is_none(), "pool full");
    assert_eq!(st.open, 2);
}

#[test]
fn an_idle_backend_is_handed_out_before_a_new_one_is_opened() {
    let mut st = state(2);
    assert!(matches!(st.grant("a", 10), Some(Grant::Open)));
    give_back(&mut st, "a", 7);
    match st.grant("b", 10) {
        Some(Grant::Idle(b, _)) => assert_eq!(b, 7),
        _ => panic!("expected the idle backend"),
    }
    assert_eq!(st.open, 1);
}

#[test]
fn a_tenant_at_its_share_waits_while_others_are_served() {
    let mut st = state(3);
    assert!(st.grant("a", 1).is_some());
    assert!(st.grant("a", 1).is_none(), "a holds its share");
    assert!(st.grant("b", 1).is_some(), "b is not held back by a");
    assert_eq!(st.held("a"), 1);
    assert_eq!(st.held("b"), 1);
}

#[test]
fn a_backend_given_back_goes_to_the_first_waiter_under_its_share() {
    let mut st = state(1);
    assert!(st.grant("a", 1).is_some());
    // "a" waits first but holds its share; "b" waits second.
    let mut first = waiter(&mut st, "a", 1);
    let mut second = waiter(&mut st, "b", 1);
    give_back(&mut st, "a", 9);
    // "a" gave its backend back, so it is under its share again and first
    // in line: it gets it.
    assert!(matches!(first.try_recv(), Ok(Grant::Idle(9, _))));
    assert!(second.try_recv().is_err(), "b still waits");
    assert_eq!(st.held("a"), 1);
}

#[test]
fn a_waiter_that_gave_up_is_skipped_and_nothing_leaks() {
    let mut st = state(1);
    assert!(st.grant("a", 5).is_some());
    let gone = waiter(&mut st, "b", 5);
    drop(gone);
    let mut next = waiter(&mut st, "c", 5);
    give_back(&mut st, "a", 3);
    assert!(matches!(next.try_recv(), Ok(Grant::Idle(3, _))));
    assert_eq!(st.held("b"), 0);
    assert_eq!(st.held("c"), 1);
    assert!(st.waiting.is_empty());
}

#[test]
fn a_closed_backend_frees_its_place_for_a_waiter() {
    let mut st = state(1);
    assert!(st.grant("a", 5).is_some());
    let mut w = waiter(&mut st, "b", 5);
    // The lease is dropped without giving the backend back.
    st.unhold("a");
    st.open -= 1;
    st.dispatch();
    assert!(matches!(w.try_recv(), Ok(Grant::Open)));
    assert_eq!(st.open, 1);
}

#[test]
fn a_grant_refused_by_a_closed_receiver_is_undone() {
    let mut st = state(1);
    let (tx, rx) = oneshot::channel::<Grant<u32>>();
    drop(rx);
    let g = st.grant("a", 1).expect("a place");
    if let Err(g) = tx.send(g) {
        st.ungrant("a", g);
    }
    assert_eq!(st.open, 0);
    assert_eq!(st.held("a"), 0);
}

#[test]
fn pool_labels_name_role_database_and_a_dedicated_tenant() {
    let mut k = PoolKey {
        upstream: "main".into(),
        address: "127.0.0.1:5432".into(),
        database: "app".into(),
        role: "app_user".into(),
        dedicated: None,
    };
    assert_eq!(k.label(), "app_user@app");
    k.dedicated = Some("acme".into());
    assert_eq!(k.label(), "app_user@app/acme");
    // On a named upstream, its name first.
    k.upstream = "b".into();
    assert_eq!(k.label(), "b:app_user@app/acme");
    k.dedicated = None;
    assert_eq!(k.label(), "b:app_user@app");
}

#[test]
fn a_backend_already_serving_the_tenant_is_handed_out_first() {
    let mut st = state(3);
    for _ in 0..3 {
        assert!(st.grant("x", 10).is_some());
    }
    give_back(&mut st, "x", 2);
    give_back(&mut st, "x", 3);
    give_back(&mut st, "x", 5);
    // "even" gets 2 although 5 was given back last.
    assert!(matches!(st.grant("even", 10), Some(Grant::Idle(2, _))));
    // Without a match, the most recently used.
    assert!(matches!(st.grant("even", 10), Some(Grant::Idle(5, _))));
}

#[test]
fn a_backend_given_back_goes_to_a_client_of_its_tenant_a_little_further_in_line() {
    let mut st = state(1);
    assert!(st.grant("x", 10).is_some());
    let mut odd = waiter(&mut st, "odd", 10);
    let mut even = waiter(&mut st, "even", 10);
    // 2 serves "even": the "even" client gets it before the "odd" one.
    give_back(&mut st, "x", 2);
    assert!(matches!(even.try_recv(), Ok(Grant::Idle(2, _))));
    assert!(odd.try_recv().is_err());
}

#[test]
fn a_client_passed_over_often_enough_is_served_first_whatever_the_backend_serves() {
    let mut st = state(1);
    assert!(st.grant("x", 10).is_some());
    let mut odd = waiter(&mut st, "odd", 10);
    st.waiting[0].skipped = AFFINITY_SKIPS;
    let mut even = waiter(&mut st, "even", 10);
    give_back(&mut st, "x", 2);
    assert!(
        matches!(odd.try_recv(), Ok(Grant::Idle(2, _))),
        "no starvation"
    );
    assert!(even.try_recv().is_err());
}

#[test]
fn past_its_cap_a_tenant_borrows_only_while_the_reserve_stays_free() {
    // 8 backends, cap 2: a lone tenant may use 6, the last 2 stay for
    // the others.
    let mut st = state(8);
    st.cap = 2;
    for _ in 0..6 {
        assert!(st.grant("hog", 10).is_some());
    }
    assert!(st.grant("hog", 10).is_none(), "the reserve is kept");
    // Another tenant, under the cap, gets the reserve.
    assert!(st.grant("calm", 10).is_some());
    assert!(st.grant("calm", 10).is_some());
    assert!(st.grant("calm", 10).is_none(), "full");
    // A backend given back goes to a tenant under its cap before the hog.
    let hog = waiter(&mut st, "hog", 10);
    let third = waiter(&mut st, "third", 10);
    st.unhold("hog");
    st.open -= 1;
    st.dispatch();
    let mut third = third;
    assert!(third.try_recv().is_ok(), "the third tenant is served");
    let mut hog = hog;
    assert!(hog.try_recv().is_err(), "the hog waits");
}
