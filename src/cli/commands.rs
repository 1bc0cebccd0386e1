//! What each command does. Each opens only the layers it uses (see [`crate::startup`]).

use super::{
    AddClient, AddUser, ClientsCommand, Command, Existing, ImportUsers, KeysCommand, NewSecretKey,
    RemoveClient, RotateKey, RotateSecret, TemplatesCommand, UsersCommand,
};
use crate::clock::Clock;
use crate::config::{Config, LogFormat, Settings};
use crate::crypto::{JwtAlg, Sealer};
use crate::domain::ValidationErrors;
use crate::service::accounts::{self, AccountFields, NewAccount, Origin, Registered};
use crate::service::oauth_clients::{self, ClientError, ClientFields};
use crate::service::{import, keys, sealing};
use crate::startup::{self, IfMissing, Sealed};
use crate::{http, telemetry};
use std::io::{BufRead, IsTerminal, Write};

/// Runs `command` to its end.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(settings) => {
            let served = startup::serve(configure(settings)?).await;
            telemetry::flush_traces();
            served
        }
        Command::Migrate(settings) => {
            startup::open_store(&configure(settings)?).await?;
            eprintln!("latchkey: the database is up to date");
            Ok(())
        }
        Command::Users(UsersCommand::Add(add)) => add_user(add).await,
        Command::Users(UsersCommand::Import(import)) => import_users(import).await,
        Command::Clients(ClientsCommand::Add(add)) => add_client(add).await,
        Command::Clients(ClientsCommand::List(existing)) => list_clients(existing).await,
        Command::Clients(ClientsCommand::Remove(remove)) => remove_client(remove).await,
        Command::Keys(KeysCommand::Rotate(rotate)) => rotate_key(rotate).await,
        Command::Keys(KeysCommand::RotateSecret(command)) => rotate_secret(command).await,
        Command::Openapi(settings) => {
            let config = settings
                .into_config()
                .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
            say(&serde_json::to_string_pretty(&http::openapi(&config))?)
        }
        Command::Templates(TemplatesCommand::List) => {
            say(&crate::templates::names().collect::<Vec<_>>().join("\n"))
        }
        Command::Templates(TemplatesCommand::Export { dir }) => export_templates(&dir),
    }
}

/// Writes `line` to standard output. A closed pipe comes back as an error the caller treats
/// as the end of output ([`is_broken_pipe`]), never as a panic.
fn say(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// Whether `error` is standard output's reader having gone away (`latchkey openapi | head`).
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|error| error.kind() == std::io::ErrorKind::BrokenPipe)
}

/// The settings of a command on an existing database, refused (one line) when it is missing
/// and `--create` was not given.
fn configure_existing(existing: Existing) -> anyhow::Result<Config> {
    let config = configure(existing.settings)?;
    if !existing.create {
        startup::require_database(&config)?;
    }
    Ok(config)
}

fn configure(settings: Settings) -> anyhow::Result<Config> {
    let config = settings
        .into_config()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    telemetry::init(&config.log)?;
    Ok(config)
}

/// `templates export DIR`: the built-in templates as files, never overwriting one.
fn export_templates(dir: &std::path::Path) -> anyhow::Result<()> {
    let mut written = 0;
    for name in crate::templates::names() {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", parent.display()))?;
        }
        let source = crate::templates::builtin(name).unwrap_or_default();
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut file) => {
                file.write_all(source.as_bytes())
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                written += 1;
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                eprintln!("latchkey: {} exists; left as it is", path.display());
            }
            Err(error) => anyhow::bail!("cannot write {}: {error}", path.display()),
        }
    }
    say(&format!("wrote {written} templates to {}", dir.display()))
}

/// `keys rotate`: the database and the secret key are all a new signing key needs.
async fn rotate_key(rotate: RotateKey) -> anyhow::Result<()> {
    let config = configure_existing(rotate.existing)?;
    let clock = Clock::System;
    let Sealed { store, sealer, .. } = Sealed::open(&config, &clock, IfMissing::Create).await?;
    let alg = match rotate.id_token {
        true => JwtAlg::Rs256,
        false => config.tokens.alg,
    };
    let key = keys::rotate(&store, &sealer, alg, clock.now()).await?;
    say(&format!(
        "new signing key {}: it signs within a minute on every instance; the previous key stays in the JWKS until its tokens have expired",
        key.kid
    ))
}

/// `users add`: the password is prompted for on a terminal, else taken from standard input's
/// first line; never from a flag, where it would show in the process list and shell history.
async fn add_user(add: AddUser) -> anyhow::Result<()> {
    let mut database = add.database;
    database.settings.log.log_format = LogFormat::Text;
    let config = configure_existing(database)?;
    let password = read_password(&add.email)?;
    let mut errors = ValidationErrors::default();
    let role = match &add.role {
        Some(role) => errors.take("role", config.roles.parse(role)),
        None => Some(config.roles.default_role().clone()),
    };
    let account = NewAccount::parse(
        &config.password_policy,
        AccountFields {
            email: Some(add.email),
            password: Some(password),
            name: add.name,
            ..AccountFields::default()
        },
        true,
        &mut errors,
    );
    let (Some(account), Some(role)) = (account, role) else {
        let reasons: Vec<String> = errors
            .0
            .iter()
            .map(|e| format!("{} {}", e.field, e.message))
            .collect();
        anyhow::bail!("cannot add the user: {}", reasons.join("; "));
    };
    let app = startup::build(config, Clock::System).await?;
    let origin = Origin::Cli {
        role,
        email_verified: add.verified,
    };
    match accounts::register(&app, account, origin).await {
        Ok(Registered::Created(user)) => say(&format!("{} {}", user.id, user.email)),
        Ok(Registered::LoggedIn(_)) => unreachable!("the CLI never starts a session"),
        Err(accounts::RegisterError::EmailTaken) => {
            anyhow::bail!("cannot add the user: the email is taken")
        }
        Err(error) => Err(error.into()),
    }
}

/// The new user's password: typed twice without echo on a terminal, else the first line of
/// standard input.
fn read_password(email: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let password = rpassword::prompt_password(format!("Password for {email}: "))?;
        let repeated = rpassword::prompt_password("Repeat it: ")?;
        if password != repeated {
            anyhow::bail!("cannot add the user: the two passwords differ");
        }
        return Ok(password);
    }
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password)?;
    Ok(password.trim_end_matches(['\r', '\n']).to_owned())
}

/// `keys rotate-secret`: checks the current key before it takes or creates the new one, so a
/// wrong current key changes nothing, not even a key file.
async fn rotate_secret(command: RotateSecret) -> anyhow::Result<()> {
    let new_key = command.new_key().map_err(anyhow::Error::msg)?;
    let config = configure(command.settings)?;
    // A new database has nothing sealed to carry over.
    startup::require_database(&config)?;
    let clock = Clock::System;
    let current = Sealed::open(&config, &clock, IfMissing::Refuse).await?;
    let (new_key, kept_in) = match &new_key {
        NewSecretKey::Given(key) => (key.expose().as_bytes().to_vec(), String::new()),
        NewSecretKey::File(path) => (
            startup::key_file(path, IfMissing::Create)?,
            format!(" (kept in {})", path.display()),
        ),
    };
    if new_key == current.secret_key {
        anyhow::bail!("the new secret key is the current one; nothing to re-seal");
    }
    let rotated = sealing::rotate(
        &current.store,
        &current.sealer,
        &Sealer::new(&new_key),
        clock.now(),
    )
    .await
    .map_err(|error| startup::sealing_error(&config, error))?;
    say(&format!(
        "re-sealed the canary, {} signing key(s), {} queued mail(s) and {} TOTP secret(s) under the new secret key{kept_in}; start every instance with it, the old key no longer starts",
        rotated.signing_keys, rotated.mails, rotated.totp_secrets
    ))?;
    // Said every time: the operator must know what a rotation cannot carry over.
    say(
        "not re-keyed (keyed hashes of values that are not kept): every user's MFA recovery codes no longer work (users with a factor should make new ones), reset codes already mailed no longer work, and per-address failure counters start over",
    )
}

/// `users import`: reports each bad line with its number, imports the rest, prints the counts;
/// exits non-zero when any line was refused.
async fn import_users(command: ImportUsers) -> anyhow::Result<()> {
    let config = configure_existing(command.database)?;
    let file = std::fs::File::open(&command.file)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", command.file.display()))?;
    let app = startup::build(config, Clock::System).await?;
    let report = import::import_users(&app, std::io::BufReader::new(file)).await?;
    for (line, reason) in &report.failed {
        eprintln!("line {line}: {reason}");
    }
    say(&format!(
        "imported {}, skipped {} (already present), failed {}",
        report.imported,
        report.skipped,
        report.failed.len()
    ))?;
    if report.failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} line(s) refused; the other lines were imported",
            report.failed.len()
        )
    }
}

/// `clients add`: the same rules and event as `POST /oauth/clients`.
async fn add_client(add: AddClient) -> anyhow::Result<()> {
    let config = configure_existing(add.database)?;
    let app = startup::build(config, Clock::System).await?;
    let fields = ClientFields {
        name: Some(add.name),
        confidential: Some(!add.public),
        redirect_uris: Some(add.redirect_uris),
        post_logout_redirect_uris: Some(add.post_logout_redirect_uris),
        scopes: Some(add.scopes),
        first_party: Some(add.first_party),
    };
    match oauth_clients::register(&app, None, fields).await {
        Ok(registered) => {
            say(&format!("client_id {}", registered.client.client_id))?;
            match registered.secret {
                Some(secret) => say(&format!(
                    "client_secret {secret}\n(shown this once: it is stored only as a hash)"
                )),
                None => say("public client: no secret, PKCE only"),
            }
        }
        Err(ClientError::Invalid(errors)) => {
            let reasons: Vec<String> = errors
                .0
                .iter()
                .map(|e| format!("{} {}", e.field, e.message))
                .collect();
            anyhow::bail!("cannot add the client: {}", reasons.join("; "))
        }
        Err(error) => Err(error.into()),
    }
}

/// `clients list`: one line per client.
async fn list_clients(existing: Existing) -> anyhow::Result<()> {
    let app = startup::build(configure_existing(existing)?, Clock::System).await?;
    for client in oauth_clients::list(&app).await? {
        let kind = if client.confidential {
            "confidential"
        } else {
            "public"
        };
        say(&format!(
            "{}\t{kind}{}\t{}\t{}",
            client.client_id,
            if client.first_party {
                ",first-party"
            } else {
                ""
            },
            client.name,
            client.redirect_uris.join(" ")
        ))?;
    }
    Ok(())
}

/// `clients remove`.
async fn remove_client(remove: RemoveClient) -> anyhow::Result<()> {
    let app = startup::build(configure_existing(remove.database)?, Clock::System).await?;
    match oauth_clients::remove(&app, &remove.client_id).await {
        Ok(()) => say(&format!("removed {}", remove.client_id)),
        Err(ClientError::NotFound) => anyhow::bail!("no client {}", remove.client_id),
        Err(error) => Err(error.into()),
    }
}
