//! End-to-end tests: pipeline.
