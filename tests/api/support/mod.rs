//! What the tests share: the service under test ([`app`]), child processes and the network
//! between them ([`process`]), the peers some tests need and waiting for things ([`peers`]), and
//! the mail the service sends ([`smtp`]).

pub(crate) mod app;
pub(crate) mod peers;
pub(crate) mod process;
pub(crate) mod smtp;

pub(crate) use app::{
    PASSWORD, TestApp, assert_problem, error_fields, fresh_database, on_postgres, quiet_state,
    register_in, spawn_app, spawn_app_with, spawn_app_with_mail,
};
pub(crate) use peers::{
    NATS, NGINX, Peer, REDIS, available, eventually, tool, until_ready, wait_until_ok,
};
pub(crate) use process::{Process, Proxy, Serve, free_port, latchkey_command};
pub(crate) use smtp::{Mail, SmtpServer, wait_for_eml};
