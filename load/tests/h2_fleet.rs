//! The load generator's HTTP/2 clients against a real server over HTTPS: many streams on each
//! connection, every event delivered to each exactly once, and the count back to 0 once they
//! reset their streams (what the HTTP/2 benchmark relies on).

#[path = "../../conformance/tests/support/mod.rs"]
mod support;

use std::time::Duration;

use conformance::wire::Protocol;
use sse_load::fleet::{Fleet, Leave};
use sse_load::subject::Subject;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_sharing_http2_connections_each_get_every_event() {
    let _turn = support::ONE_AT_A_TIME.lock().await;
    let binary = support::build("axum-example", support::Target::Bin("axum-example"));
    let subject = Subject::start_tls(&binary, &[], Protocol::Http2)
        .await
        .expect("the server starts over HTTPS");
    // 250 streams, 100 to a connection: three connections, the last with 50.
    let clients = 250;
    let fleet =
        Fleet::start_h2(subject.address, &subject.transport, clients, 100).expect("a TLS server");
    assert!(
        fleet.wait_heads(clients, Duration::from_secs(60)).await,
        "not every stream got its head"
    );
    subject
        .wait_clients(Duration::from_secs(10), |n| n == clients as u64)
        .await
        .unwrap_or_else(|n| panic!("/health counts {n} of {clients} streams"));
    let mut ids = Vec::new();
    for k in 0..5 {
        ids.push(
            subject
                .publisher
                .publish("h2", &format!("event {k}"))
                .await
                .expect("a 202"),
        );
    }
    let (first, last) = (ids[0], ids[4]);
    assert_eq!(last, first + 4, "ids {ids:?}");
    assert!(
        fleet
            .wait_delivered(5 * clients as u64, Duration::from_secs(30))
            .await,
        "not every delivery arrived"
    );
    let tallies = fleet.finish(Leave::Reset, Duration::from_secs(30)).await;
    assert_eq!(tallies.len(), clients, "every client reports back");
    for tally in &tallies {
        assert!(
            tally.got_exactly(first, last),
            "a stream did not get exactly {first}..={last}: {}",
            tally.describe()
        );
    }
    // Each stream was reset (RST_STREAM) and its connection closed: the server counts none.
    subject
        .wait_clients(Duration::from_secs(10), |n| n == 0)
        .await
        .unwrap_or_else(|n| panic!("/health still counts {n} streams after every reset"));
    subject.stop().await;
}
