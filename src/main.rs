//! The `switchboard` binary: parses the command line and runs it.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: a request allocates and frees
/// many small buffers across threads, where glibc's arenas spent about 9% of
/// the server's CPU on `GET /v1/companies` (benches/companies.sh). Built as
/// mimalloc v2 (it returns freed memory to the OS after 100 ms, v3 after
/// 1 s) with arena memory committed as touched, not eagerly
/// (`.cargo/config.toml`), so an idle server holds only what it uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long an idle blocking-pool thread lives (tokio's default is 10 s).
/// Password hashing runs there and each hash allocates 19 MiB, which the
/// allocator gives back once the thread that used it ends: a short life
/// returns it soon after a burst of logins, for about 20 µs of thread start
/// on the next hash (which takes tens of milliseconds).
const BLOCKING_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(1);

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SWITCHBOARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    switchboard::cli::run(switchboard::cli::Cli::parse()).await
}
