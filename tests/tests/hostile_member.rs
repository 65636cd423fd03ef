//! Hostile members on the path users run: `etcd3::Client` as a user builds it, with
//! a request timeout, pointed at a "member" that breaks HTTP/2 in one way after another
//! (`etcd_tests::hostile::Offence`). Each call must end within the request timeout with a
//! typed error, no task may panic, the process's memory must stay bounded, and a client of
//! a real etcd in the same process must keep working throughout
//! (`etcd_tests::hostile::every_offence_through_client`). `hostile_member_tls.rs` does the
//! same over TLS.
//!
//! One test in its own binary, so that the process's memory is this test's alone.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_to_a_hostile_member_ends_promptly_and_the_process_stays_well() {
    // 5 s: long enough for the offences the client stops with an error of its own (after
    // its retries) to end that way, which the output shows.
    etcd_tests::hostile::every_offence_through_client(false, std::time::Duration::from_secs(5))
        .await;
}
