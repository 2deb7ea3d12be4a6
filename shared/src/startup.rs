//! Start-up failures said once: which service could not be reached, at which address (never
//! with credentials), why, and how to fix it. The error chains of sqlx, lapin and redis repeat
//! their cause at every level (`database: error communicating with database: Connection
//! refused (os error 111): error communicating with database: …`); [`explain`] replaces such a
//! chain with one line.

use std::fmt;

use crate::Config;

/// A service hookrelay depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    PostgreSql,
    RabbitMq,
    Redis,
}

impl Service {
    /// Its name, as operators know it.
    pub fn name(self) -> &'static str {
        match self {
            Self::PostgreSql => "PostgreSQL",
            Self::RabbitMq => "RabbitMQ",
            Self::Redis => "Redis",
        }
    }

    /// The environment variable that says where it runs.
    pub fn env_var(self) -> &'static str {
        match self {
            Self::PostgreSql => "HOOKRELAY_DATABASE_URL",
            Self::RabbitMq => "HOOKRELAY_AMQP_URL",
            Self::Redis => "HOOKRELAY_REDIS_URL",
        }
    }

    /// Its URL in `config`.
    pub fn url(self, config: &Config) -> &str {
        match self {
            Self::PostgreSql => &config.database_url,
            Self::RabbitMq => &config.amqp_url,
            Self::Redis => &config.redis_url,
        }
    }

    fn default_port(self, scheme: &str) -> u16 {
        match (self, scheme) {
            (Self::PostgreSql, _) => 5432,
            (Self::RabbitMq, "amqps") => 5671,
            (Self::RabbitMq, _) => 5672,
            (Self::Redis, _) => 6379,
        }
    }

    /// `host:port` of `url`, without user, password, path or query.
    pub fn address(self, url: &str) -> String {
        match url::Url::parse(url) {
            Ok(u) => match u.host_str().filter(|h| !h.is_empty()) {
                Some(host) => {
                    let port = u.port().unwrap_or_else(|| self.default_port(u.scheme()));
                    format!("{host}:{port}")
                }
                None => format!("the address in {}", self.env_var()),
            },
            Err(_) => format!("the address in {}", self.env_var()),
        }
    }
}

/// A service that could not be reached at start-up. Its `Display` is the whole message, on
/// one line; it has no `source`, so `{:#}` does not repeat the cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreachable {
    pub service: Service,
    /// `host:port`, never with credentials.
    pub address: String,
    /// The innermost cause (`Connection refused (os error 111)`).
    pub cause: String,
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot reach {} at {}: {}. Start the local services with `bash scripts/services.sh`, \
             or set {} to where {} runs.",
            self.service.name(),
            self.address,
            self.cause,
            self.service.env_var(),
            self.service.name(),
        )
    }
}

impl std::error::Error for Unreachable {}

/// The service an error in a chain comes from, if it is one of the clients'.
fn service_of(err: &(dyn std::error::Error + 'static)) -> Option<Service> {
    if err.is::<sqlx::Error>() || err.is::<crate::db::DbError>() || err.is::<sqlx::migrate::MigrateError>() {
        Some(Service::PostgreSql)
    } else if err.is::<lapin::Error>() {
        Some(Service::RabbitMq)
    } else if err.is::<redis::RedisError>() {
        Some(Service::Redis)
    } else {
        None
    }
}

/// Whether the failure is about reaching the service (as opposed to, say, a failed migration).
fn is_unreachable(err: &(dyn std::error::Error + 'static)) -> bool {
    err.is::<std::io::Error>()
        || matches!(
            err.downcast_ref::<sqlx::Error>(),
            Some(sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut)
        )
        || err
            .downcast_ref::<redis::RedisError>()
            .is_some_and(|e| e.is_io_error() || e.is_connection_refusal() || e.is_timeout())
}

/// `text` with the password of every configured URL masked (a client may quote its URL).
fn without_passwords(mut text: String, config: &Config) -> String {
    for service in [Service::PostgreSql, Service::RabbitMq, Service::Redis] {
        if let Ok(u) = url::Url::parse(service.url(config))
            && let Some(pw) = u.password().filter(|p| !p.is_empty())
        {
            text = text.replace(pw, "***");
        }
    }
    text
}

/// One line for `err` when it says a service could not be reached; `None` for anything else
/// (which is then printed as it is).
pub fn explain(err: &anyhow::Error, config: &Config) -> Option<Unreachable> {
    let chain: Vec<&(dyn std::error::Error + 'static)> = err.chain().collect();
    let service = chain.iter().find_map(|e| service_of(*e))?;
    if !chain.iter().any(|e| is_unreachable(*e)) {
        return None;
    }
    let cause = chain.last().map(|e| e.to_string()).unwrap_or_default();
    Some(Unreachable {
        service,
        address: service.address(service.url(config)),
        cause: without_passwords(cause, config),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_never_carries_credentials() {
        assert_eq!(
            Service::PostgreSql.address("postgres://u:secret@db.internal:6543/hookrelay?sslmode=require"),
            "db.internal:6543"
        );
        assert_eq!(
            Service::RabbitMq.address("amqp://guest:guest@127.0.0.1/%2f"),
            "127.0.0.1:5672"
        );
        assert_eq!(Service::RabbitMq.address("amqps://u:p@mq"), "mq:5671");
        assert_eq!(Service::Redis.address("redis://:pw@[::1]:6380/0"), "[::1]:6380");
        assert_eq!(
            Service::PostgreSql.address("not a url"),
            "the address in HOOKRELAY_DATABASE_URL"
        );
    }

    #[test]
    fn a_refused_connection_is_said_once_with_the_fix() {
        let config = Config {
            database_url: "postgres://postgres:hunter2@127.0.0.1:1/x".into(),
            ..Config::default()
        };
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let err = anyhow::Error::from(crate::db::DbError::Sqlx(sqlx::Error::Io(io))).context("PostgreSQL");
        let u = explain(&err, &config).expect("explained");
        assert_eq!(u.service, Service::PostgreSql);
        let line = u.to_string();
        assert!(
            line.starts_with("cannot reach PostgreSQL at 127.0.0.1:1: "),
            "{line}"
        );
        assert_eq!(line.matches("refused").count(), 1, "{line}");
        assert!(line.contains("bash scripts/services.sh") && line.contains("HOOKRELAY_DATABASE_URL"));
        assert!(!line.contains("hunter2") && !line.contains('\n'), "{line}");
        let other = anyhow::anyhow!("something else");
        assert_eq!(explain(&other, &config), None);
    }
}
