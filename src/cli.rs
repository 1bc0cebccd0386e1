//! The command line: `serve`, `migrate`, `users add`, `openapi`.

use crate::config::Settings;
use clap::{Parser, Subcommand};

/// latchkey: user registration and authentication service.
#[derive(Debug, Parser)]
#[command(name = "latchkey", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate the database, then serve HTTP.
    Serve(Settings),
    /// Apply pending database migrations.
    Migrate(Settings),
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Print the OpenAPI document.
    Openapi {
        /// Prefix for every path, as served.
        #[arg(long, env = "LATCHKEY_BASE_PATH", default_value = "")]
        base_path: String,
    },
}

/// `latchkey users …`
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user; the password is read from standard input.
    Add(AddUser),
}

/// `latchkey users add`
#[derive(Debug, clap::Args)]
pub struct AddUser {
    /// The new user's email.
    #[arg(long)]
    pub email: String,
    /// Role [default: the default role].
    #[arg(long)]
    pub role: Option<String>,
    /// Mark the email as verified.
    #[arg(long)]
    pub verified: bool,
    /// Full name.
    #[arg(long)]
    pub name: Option<String>,
    /// Database and policy settings.
    #[command(flatten)]
    pub settings: Settings,
}
