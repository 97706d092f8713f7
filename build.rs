//! Records the commit the binary is built from (for `/health/detailed`),
//! or `unknown` outside a git checkout (e.g. a Docker build context). The
//! variable's name stays outside the `SWITCHBOARD_` configuration prefix:
//! cargo also sets it for the programs it runs (tests, `cargo run`), and
//! the configuration refuses unknown `SWITCHBOARD_` keys.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BUILD_GIT_COMMIT={commit}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
