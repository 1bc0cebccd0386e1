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
    /// Manage the JWT signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
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
    /// Import users from a JSON-lines file (email, password_hash as bcrypt or argon2 PHC,
    /// optional name, phone, metadata, role, email_verified, created_at); idempotent.
    Import(ImportUsers),
}

/// `latchkey users import`
#[derive(Debug, clap::Args)]
pub struct ImportUsers {
    /// The JSON-lines file.
    pub file: std::path::PathBuf,
    /// Database and policy settings.
    #[command(flatten)]
    pub settings: Settings,
}

/// `latchkey keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new signing key: it signs on every instance within a minute; the old one stays
    /// published until every token it signed has expired.
    Rotate(Settings),
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
