//! The scheduler's integration tests, on the real PostgreSQL, Redis and RabbitMQ.

mod fire;
mod helpers;
mod manual;
mod reconcile;
mod retention;
