//! The scheduler's integration tests, on the real PostgreSQL, Redis and RabbitMQ.

mod e2e;
mod fire;
mod helpers;
mod manual;
mod policy;
mod reconcile;
mod retention;
