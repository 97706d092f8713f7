//! Baseline for `benches/companies.sh`: a bare axum handler answering a
//! fixed JSON body (read from the file named by the first argument) with no
//! auth and no database, on the address given as the second argument.
//! Same runtime and allocator as the server, so the ratio measures what the
//! endpoint itself costs.

use std::net::SocketAddr;

use axum::Router;
use axum::http::header;
use axum::routing::get;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let body_path = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: bare BODY.json ADDR"))?;
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:18081".into())
        .parse()?;
    let body: &'static str = Box::leak(std::fs::read_to_string(body_path)?.into_boxed_str());
    let app = Router::new().route(
        "/v1/companies",
        get(move || async move { ([(header::CONTENT_TYPE, "application/json")], body) }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
