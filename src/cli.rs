//! The command line: `serve` (default), `migrate`, `openapi`,
//! `admin create --email …`. Exit codes: 0 ok, 1 runtime failure, 2 invalid
//! configuration or usage.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use secrecy::SecretString;

use crate::config::Config;
use crate::domain::validate::{Email, Password};

/// Switchboard: control plane for multichannel business automation.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Cli {
    /// Configuration file (default `switchboard.toml`, optional).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// What to do (default `serve`).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP server (migrates first).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// Administrative tasks.
    Admin {
        /// Which one.
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Key management of the secret vault.
    Keys {
        /// Which one.
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Billing maintenance.
    Billing {
        /// Which one.
        #[command(subcommand)]
        command: BillingCommand,
    },
}

/// `billing` subcommands.
#[derive(Subcommand, Debug)]
pub enum BillingCommand {
    /// Re-read every subscription from Stripe, repair drift and print what
    /// changed (the daily job does the same). Exits 1 if a business could
    /// not be checked.
    Reconcile,
}

/// `keys` subcommands.
#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Re-wrap every secret's data key (and every pending email body's)
    /// under the first key of `SWITCHBOARD_MASTER_KEYS`. Online (the server
    /// keeps serving), resumable and idempotent; then prints what each key
    /// wraps and exits 1 if anything could not be opened or is still under
    /// another key (an instance not yet restarted keeps sealing under its
    /// old first key).
    Rotate,
    /// Print what each key wraps; exits 1 while anything is under a key
    /// other than the first of `SWITCHBOARD_MASTER_KEYS` (an old key may be
    /// removed only when this exits 0).
    Status,
}

/// `admin` subcommands.
#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create an admin account. The password comes from
    /// `SWITCHBOARD_ADMIN_PASSWORD` or an interactive prompt.
    Create {
        /// The admin's email.
        #[arg(long)]
        email: String,
        /// The admin's full name.
        #[arg(long, default_value = "Administrator")]
        name: String,
    },
}

/// Runs the command line; returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Openapi = command {
        return match serde_json::to_string_pretty(&crate::http::openapi()) {
            Ok(doc) => {
                println!("{doc}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Serve => crate::app::serve(config).await,
        Command::Migrate => migrate(config).await,
        Command::Admin {
            command: AdminCommand::Create { email, name },
        } => create_admin(config, &email, &name).await,
        Command::Keys {
            command: KeysCommand::Rotate,
        } => rotate_keys(config).await,
        Command::Keys {
            command: KeysCommand::Status,
        } => key_status(config).await,
        Command::Billing {
            command: BillingCommand::Reconcile,
        } => reconcile(config).await,
        Command::Openapi => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<crate::config::ConfigError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn migrate(config: Config) -> anyhow::Result<()> {
    let db = crate::db::connect(&config).await?;
    crate::db::migrate(&db).await?;
    println!("migrations applied");
    Ok(())
}

async fn create_admin(config: Config, email: &str, name: &str) -> anyhow::Result<()> {
    let email = Email::parse("email", email)?;
    let password = match std::env::var("SWITCHBOARD_ADMIN_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            tokio::task::spawn_blocking(|| {
                rpassword::prompt_password("Password for the new admin: ")
            })
            .await??
        }
    };
    let password = Password::parse("password", SecretString::from(password))?;
    let state = crate::app::build_state(config).await?;
    let id =
        crate::domain::tenancy::managers::create_admin(&state.identity(), &email, name, password)
            .await?;
    println!("admin {} created with id {id}", email.as_str());
    Ok(())
}

async fn reconcile(config: Config) -> anyhow::Result<()> {
    if config.stripe.is_none() {
        anyhow::bail!("billing is not configured (SWITCHBOARD_STRIPE__SECRET_KEY)");
    }
    let state = crate::app::build_state(config).await?;
    let report = crate::domain::billing::reconcile::reconcile(&state.billing())
        .await
        .map_err(|e| anyhow::anyhow!("reconciliation failed: {}", e.code()))?;
    for c in &report.changes {
        let plan = c
            .plan
            .as_ref()
            .map(|(a, b)| format!(" plan {a} -> {b}"))
            .unwrap_or_default();
        let status = c
            .status
            .as_ref()
            .map(|(a, b)| format!(" status {} -> {}", a.as_str(), b.as_str()))
            .unwrap_or_default();
        println!(
            "business {}:{plan}{status} suspended {} restored {}",
            c.business_id, c.suspended, c.restored
        );
    }
    for (business, error) in &report.errors {
        println!("business {business}: not checked: {error}");
    }
    println!(
        "checked {} businesses, {} subscriptions; repaired {} subscriptions; {} businesses changed; {} errors",
        report.businesses_checked,
        report.subscriptions_seen,
        report.subscriptions_repaired,
        report.changes.len(),
        report.errors.len()
    );
    state.db.clone().close().await?;
    if !report.errors.is_empty() {
        anyhow::bail!("{} business(es) could not be checked", report.errors.len());
    }
    Ok(())
}

async fn rotate_keys(config: Config) -> anyhow::Result<()> {
    let keys = crate::keys::Keys::resolve(&config)?;
    let db = crate::db::connect(&config).await?;
    crate::db::migrate(&db).await?;
    let keyring = crate::crypto::Keyring::new(keys.master_keys);
    println!("re-wrapping data keys under `{}`", keyring.current_id());
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} secrets ({eta} left)")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let summary = crate::domain::vault::secrets::rotate(&db, &keyring, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .await?;
    bar.finish_and_clear();
    let (emails_rewrapped, emails_current, emails_failed) =
        crate::mail::rotate(&db, &keyring).await?;
    let (hooks_rewrapped, hooks_current, hooks_failed) =
        crate::domain::events::webhooks::rotate(&db, &keyring).await?;
    println!(
        "rewrapped {}, already current {}, failed {}",
        summary.rewrapped, summary.already_current, summary.failed
    );
    println!(
        "pending email bodies: rewrapped {emails_rewrapped}, already current {emails_current}, failed {emails_failed}"
    );
    println!(
        "webhook signing secrets: rewrapped {hooks_rewrapped}, already current {hooks_current}, failed {hooks_failed}"
    );
    let failed = summary.failed + emails_failed + hooks_failed;
    if failed > 0 {
        db.close().await?;
        anyhow::bail!("{failed} value(s) could not be opened; see the log and the audit log");
    }
    // Counted after the pass: an instance still running with an older
    // keyring keeps sealing under its first key, and this is where it shows.
    let result = report_keys(&db, keyring.current_id()).await;
    db.close().await?;
    result?;
    println!(
        "rotation complete: everything is sealed under `{}`",
        keyring.current_id()
    );
    Ok(())
}

async fn key_status(config: Config) -> anyhow::Result<()> {
    let keys = crate::keys::Keys::resolve(&config)?;
    let db = crate::db::connect(&config).await?;
    crate::db::migrate(&db).await?;
    let keyring = crate::crypto::Keyring::new(keys.master_keys);
    let result = report_keys(&db, keyring.current_id()).await;
    db.close().await?;
    result?;
    println!("everything is sealed under `{}`", keyring.current_id());
    Ok(())
}

/// Prints what each key wraps; an error when anything is under a key other
/// than `current`.
async fn report_keys(db: &sea_orm::DatabaseConnection, current: &str) -> anyhow::Result<()> {
    let counts = crate::domain::vault::secrets::count_by_key(db).await?;
    println!("sealed under each key now:");
    let mut elsewhere = 0;
    for (key, n) in &counts {
        let mark = if key == current { " (current)" } else { "" };
        println!(
            "  {key}{mark}: {} secrets, {} pending email bodies, {} webhook signing secrets",
            n.secrets, n.emails, n.webhook_secrets
        );
        if key != current {
            elsewhere += n.secrets + n.emails + n.webhook_secrets;
        }
    }
    if elsewhere > 0 {
        anyhow::bail!(
            "rotation incomplete: {elsewhere} value(s) are still sealed under a key other than `{current}`. \
             An instance started before `{current}` was put first keeps sealing under its old key: \
             restart every instance with the new keyring, then run `switchboard keys rotate` again. \
             Do not remove an old key while any value is under it."
        );
    }
    Ok(())
}
