//! latchkey: user registration and authentication service.
//!
//! Dependencies point down: `http` → `service` → `store` / `crypto` / `domain`.

/// The command line (clap) and what each command does.
pub mod cli;
/// The only reader of the wall clock and the maker of ids; tests move a manual one.
pub mod clock;
/// Settings (flags and `LATCHKEY_*` variables) in groups, validated into a `Config`.
pub mod config;
/// Password hashing pool, JWTs, random tokens.
pub mod crypto;
/// Pure types and rules: email, password, user, role, event.
pub mod domain;
/// The event relay: outbox to NATS JetStream.
pub mod events;
/// Owner-only files: created 0600, tightened when found looser.
pub mod files;
/// Router, layers, extractors, problem+json errors, one module per area.
pub mod http;
/// The durable mail queue's worker and transports (SMTP, log/.eml).
pub mod mail;
/// Rate limits per client network and per account, in a bounded map or in Redis.
pub mod ratelimit;
/// The in-memory view of revoked sessions, synced from the store.
pub mod revocations;
/// Use cases: accounts, sessions, password attempts, mail flows and requests, administration,
/// import, signing keys.
pub mod service;
/// The composition root, start-up and graceful shutdown.
pub mod startup;
/// The shared application state and what happens after a committed write.
pub mod state;
/// Persistence seam: all SQL, each operation written once for SQLite and PostgreSQL.
pub mod store;
/// Logging, traces and metrics set-up.
pub mod telemetry;
/// The mails and hosted pages: minijinja templates, built in and overridable, in English and
/// German.
pub mod templates;

/// This build's version, from Cargo.toml.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit this build was made from (or `unknown`), stamped by `build.rs`.
pub const COMMIT: &str = env!("LATCHKEY_COMMIT");
