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
    let id = crate::domain::managers::create_admin(&state, &email, name, password).await?;
    println!("admin {} created with id {id}", email.as_str());
    Ok(())
}
