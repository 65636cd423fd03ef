//! Hostile members over TLS, on the path users run: the member completes a real TLS
//! handshake, then breaks HTTP/2 inside the records, one offence after another. The same
//! guarantees as in plain text (`hostile_member.rs`): every call ends within the request
//! timeout with a typed error, no task panics, memory stays bounded, and a client of a real
//! etcd in the same process keeps working.
//!
//! One test in its own binary, so that the process's memory is this test's alone.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_to_a_hostile_tls_member_ends_promptly_and_the_process_stays_well() {
    // A shorter timeout than in plain text: this run checks that TLS changes none of the
    // guarantees; which error each offence gets is what `hostile_member.rs` shows.
    etcd_tests::hostile::every_offence_through_client(true, std::time::Duration::from_secs(2))
        .await;
}
