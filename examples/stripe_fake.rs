//! The test suite's local Stripe server (`tests/api/stripe_fake/`, which
//! speaks Stripe's wire format from Stripe's published example objects) as
//! a process of its own, for tools that drive the real binary: the contract
//! run (`tests/contract/run.sh`) points billing at it so billing routes are
//! live. Prints `READY <base url>` and serves until killed.

#[path = "../tests/api/stripe_fake/mod.rs"]
mod stripe_fake;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let fake = stripe_fake::FakeStripe::start().await;
    println!("READY {}", fake.url);
    std::future::pending::<()>().await;
}
