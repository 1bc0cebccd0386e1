//! The integration suite: the real router over HTTP on 127.0.0.1:0, a fresh database per test.
// Tests make ids of their own (rows that no service call made); the rule that ids follow the
// injected clock is for the service.
#![allow(clippy::disallowed_methods)]

mod admin;
mod auth;
mod bad_input;
mod browser;
mod cli;
mod cluster;
mod connections;
mod cors;
mod crash;
mod events;
mod fuzz;
mod hardening;
mod import;
mod mail;
mod mfa;
mod oauth_clients;
mod oidc;
mod ops;
mod outage;
mod passkeys;
mod ratelimit;
mod redis;
mod sealing;
mod security;
mod sessions;
mod stepup;
mod store;
mod support;
mod tokens;
mod traces;
mod users;
