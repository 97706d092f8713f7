//! The test suite's local WAHA server (`tests/api/waha_fake.rs`, which
//! speaks WAHA's wire format and signs its webhooks as WAHA does) as a
//! process of its own, for tools that drive the real binary: the contract
//! run (`tests/contract/run.sh`) points WhatsApp at it so the connect, QR
//! and WAHA webhook routes are live. Its API key is `waha-test-api-key`.
//! Prints `READY <base url>` and serves until killed.

#[allow(dead_code)] // the tests use more of it than this server does
#[path = "../tests/api/waha_fake.rs"]
mod waha_fake;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let fake = waha_fake::FakeWaha::start().await;
    println!("READY {}", fake.url);
    std::future::pending::<()>().await;
}
