//! The command line: `serve`, `migrate`, `users add|import`, `clients add|list|remove`,
//! `keys rotate|rotate-secret`, `openapi`, `templates list|export`.

mod commands;

pub use commands::{is_broken_pipe, run};

use crate::config::{Secret, Settings};
use clap::{Parser, Subcommand};

const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("LATCHKEY_COMMIT"),
    ")"
);

/// latchkey: user registration and authentication service.
#[derive(Debug, Parser)]
#[command(name = "latchkey", version = LONG_VERSION, about)]
pub struct Cli {
    /// A TOML file of settings, keys named like the variables (`LATCHKEY_LISTEN = "…"`);
    /// variables and flags override it.
    #[arg(long, global = true, env = "LATCHKEY_CONFIG", value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
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
    /// Manage the OAuth / OpenID Connect clients (the apps that sign users in through latchkey).
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Manage the JWT signing keys and the secret key that seals them.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the OpenAPI document of the service these settings configure (base path, roles,
    /// password policy).
    Openapi(Settings),
    /// The built-in mail and page templates, which files in LATCHKEY_TEMPLATES_DIR replace.
    #[command(subcommand)]
    Templates(TemplatesCommand),
}

/// `latchkey templates …`
#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// Name every built-in template (a file of that name in LATCHKEY_TEMPLATES_DIR replaces it).
    List,
    /// Write every built-in template into DIR, as a start for overrides; existing files are
    /// left alone and named.
    Export {
        /// The directory to write into (created when missing).
        dir: std::path::PathBuf,
    },
}

/// `latchkey clients …`
#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Register a client; prints its id and, for a confidential client, its secret (shown
    /// this once).
    Add(AddClient),
    /// List the clients: id, kind, name, redirect URIs.
    List(Existing),
    /// Remove a client.
    Remove(RemoveClient),
}

/// `latchkey clients add`
#[derive(Debug, clap::Args)]
pub struct AddClient {
    /// What the consent page calls it.
    #[arg(long)]
    pub name: String,
    /// A redirect URI, matched exactly (repeat for more).
    #[arg(long = "redirect-uri", required = true)]
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return (repeat for more).
    #[arg(long = "post-logout-redirect-uri")]
    pub post_logout_redirect_uris: Vec<String>,
    /// A scope it may ask for besides `openid` (repeat for more).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// A public client (a single-page or mobile app): no secret, PKCE only.
    #[arg(long)]
    pub public: bool,
    /// An app of the platform's own: its users see no consent page.
    #[arg(long)]
    pub first_party: bool,
    /// The database, which must exist unless `--create` is given.
    #[command(flatten)]
    pub database: Existing,
}

/// `latchkey clients remove`
#[derive(Debug, clap::Args)]
pub struct RemoveClient {
    /// The client id.
    pub client_id: String,
    /// The database, which must exist unless `--create` is given.
    #[command(flatten)]
    pub database: Existing,
}

/// `latchkey users …`
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user; the password is prompted for on a terminal, else read from standard input.
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
    /// The database, which must exist unless `--create` is given.
    #[command(flatten)]
    pub database: Existing,
}

/// The settings of a command that works on the server's database: it refuses to create a new
/// one by mistake (a missing `LATCHKEY_DATABASE_URL` would otherwise mean a fresh SQLite file).
#[derive(Debug, clap::Args)]
pub struct Existing {
    /// Create the database when it does not exist yet, instead of refusing.
    #[arg(long)]
    pub create: bool,
    /// Database and policy settings.
    #[command(flatten)]
    pub settings: Settings,
}

/// `latchkey keys rotate`: the access-token key, or the OpenID Connect ID-token key.
#[derive(Debug, clap::Args)]
pub struct RotateKey {
    /// Rotate the RS256 key that signs ID tokens instead of the access-token key.
    #[arg(long)]
    pub id_token: bool,
    /// Database and secret key settings.
    #[command(flatten)]
    pub existing: Existing,
}

/// `latchkey keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new signing key: it signs on every instance within a minute; the old one stays
    /// published until every token it signed has expired.
    Rotate(RotateKey),
    /// Re-seal the database's secrets under a new secret key. Stop every instance first.
    ///
    /// Opens, with the current secret key, everything sealed under it (every signing key's
    /// private half, every queued mail's bodies, the canary) and seals it under the new key, in
    /// one transaction; with a wrong current key it changes nothing. Stop every instance first:
    /// one still running keeps the old key, so it can no longer reload its signing keys, and the
    /// mail it queues would be sealed under a key no instance has any more. Afterwards start
    /// every instance with the new key; the old one no longer starts. MFA recovery codes and
    /// reset codes already mailed stop working and per-address failure counters start over:
    /// they are keyed hashes of values that are not kept, so they cannot be re-keyed (reset
    /// links keep working; users with a second factor should make new recovery codes).
    RotateSecret(RotateSecret),
}

/// `latchkey keys rotate-secret`: the new key is given as the current one is.
#[derive(Debug, clap::Args)]
pub struct RotateSecret {
    /// The new secret key (at least 32 bytes).
    #[arg(long, env = "LATCHKEY_NEW_SECRET_KEY", hide_env_values = true)]
    pub new_secret_key: Option<Secret>,
    /// The new key's file (64 hex characters); created owner-only with a random key when
    /// missing.
    #[arg(long, env = "LATCHKEY_NEW_SECRET_KEY_FILE")]
    pub new_secret_key_file: Option<std::path::PathBuf>,
    /// Database and current secret key settings.
    #[command(flatten)]
    pub settings: Settings,
}

/// Where the new secret key comes from.
#[derive(Debug)]
pub enum NewSecretKey {
    /// Given directly.
    Given(Secret),
    /// Kept in a file (created when missing).
    File(std::path::PathBuf),
}

impl RotateSecret {
    /// The new key's source: exactly one of the two ways, and a given key of at least 32 bytes.
    pub fn new_key(&self) -> Result<NewSecretKey, String> {
        match (&self.new_secret_key, &self.new_secret_key_file) {
            (Some(_), Some(_)) => Err(
                "give the new secret key one way: LATCHKEY_NEW_SECRET_KEY or LATCHKEY_NEW_SECRET_KEY_FILE, not both"
                    .into(),
            ),
            (None, None) => Err(
                "give the new secret key: --new-secret-key-file PATH (created when missing) or LATCHKEY_NEW_SECRET_KEY"
                    .into(),
            ),
            (Some(key), None) if key.expose().len() < 32 => {
                Err("LATCHKEY_NEW_SECRET_KEY must be at least 32 bytes".into())
            }
            (Some(key), None) => Ok(NewSecretKey::Given(key.clone())),
            (None, Some(path)) => Ok(NewSecretKey::File(path.clone())),
        }
    }
}

/// `latchkey users add`: the password is prompted for (without echo) on a terminal, and read
/// from the first line of standard input otherwise.
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
    /// The database, which must exist unless `--create` is given.
    #[command(flatten)]
    pub database: Existing,
}
