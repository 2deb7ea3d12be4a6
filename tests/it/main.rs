//! End-to-end tests of the `hookrelay` binary and of the whole system, against the real
//! PostgreSQL, Redis and RabbitMQ. One binary; one module per area.

mod api;
mod architecture;
mod browser;
mod cli;
mod deploy;
#[path = "../common/fleet.rs"]
mod fleet;
mod isolation;
mod ops;
mod options;
mod ordering;
mod pipeline;
mod processes;
#[path = "../common/receiver.rs"]
mod receiver;
mod scheduler;
mod startup;
#[path = "../common/support.rs"]
mod support;
