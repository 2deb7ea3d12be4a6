//! Helpers for running the real `hookrelay` binary as a child process. Included by both test
//! binaries (`tests/it`, `tests/faults`) with `#[path]`.
#![allow(dead_code)] // each test module uses a different subset

use std::process::{Child, Command, Stdio};

use hookrelay_shared::Config;

/// The `hookrelay` binary built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_hookrelay");

/// A `hookrelay <args>` command with the environment of `config`.
pub fn command(config: &Config, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("HOOKRELAY_DATABASE_URL", &config.database_url)
        .env("HOOKRELAY_AMQP_URL", &config.amqp_url)
        .env("HOOKRELAY_REDIS_URL", &config.redis_url)
        .env("HOOKRELAY_NAMESPACE", &config.namespace)
        .env(
            "HOOKRELAY_ALLOW_PRIVATE_TARGETS",
            config.allow_private_targets.to_string(),
        )
        .env("HOOKRELAY_API_ADDR", "127.0.0.1:0")
        .env_remove("HOOKRELAY_CONFIG")
        .stdin(Stdio::null());
    cmd
}

/// Starts `hookrelay <args>` in the background (stdout/stderr inherited for debugging).
pub fn spawn(config: &Config, args: &[&str]) -> Child {
    command(config, args).spawn().expect("hookrelay starts")
}
