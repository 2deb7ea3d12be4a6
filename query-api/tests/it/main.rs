//! Integration tests of the query API over real HTTP against real PostgreSQL (and, for the
//! retry tests, RabbitMQ and an in-process dispatcher). One binary; one module per area.

mod auth;
mod bad_input;
mod bulk;
mod deliveries;
mod details;
mod ops;
mod options;
mod ordering;
mod portal;
mod retries;
mod stats;
mod support;
mod test_events;
mod webhooks;
