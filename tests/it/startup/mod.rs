//! Start-up of the real binary: every component migrates a new database on its own (also when
//! several start at once), a service that can't be reached is said once with its address and
//! the fix (this file); `hookrelay up` opens private targets only by default on loopback
//! (`private_targets.rs`); the dead-letter queue is bounded (`dead_letter.rs`).

mod dead_letter;
mod private_targets;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Stdio},
    time::Duration,
};

use hookrelay_shared::{Config, amqp, db, metrics::Metrics, testing::TestEnv};

use crate::support::command;

/// A child process killed when dropped, so a failing test leaves none behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` and waits (at most a minute) for the line that starts with `prefix`; the rest
/// of that line, trimmed. Stdout keeps being drained.
async fn start_and_read(mut cmd: std::process::Command, prefix: &'static str) -> (Running, Option<String>) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("hookrelay starts");
    let stdout = child.stdout.take().expect("stdout");
    let reader = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let found = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix(prefix).map(|rest| rest.trim().to_owned()));
        std::thread::spawn(move || lines.for_each(drop));
        found
    });
    let found = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
    (Running(child), found)
}

/// A config on a database that does not exist yet and a namespace of its own.
fn fresh_config() -> (Config, String) {
    hookrelay_shared::install_crypto_provider();
    let suffix = format!("{:016x}", rand::random::<u64>());
    let mut config = Config {
        database_url: format!("{}/hookrelay_t_{suffix}", hookrelay_shared::testing::server_url()),
        namespace: format!("t_{suffix}"),
        allow_private_targets: true,
        ..Config::default()
    };
    if let Ok(url) = std::env::var("HOOKRELAY_AMQP_URL") {
        config.amqp_url = url;
    }
    if let Ok(url) = std::env::var("HOOKRELAY_REDIS_URL") {
        config.redis_url = url;
    }
    (config, suffix)
}

/// The environment of `config` as a [`TestEnv`], for its cleanup.
async fn as_test_env(config: Config, suffix: String) -> TestEnv {
    let db = db::connect(&config, 2).await.expect("database exists");
    TestEnv {
        names: amqp::Names::new(&config.namespace),
        config,
        db,
        metrics: Metrics::new(),
        suffix,
    }
}

#[tokio::test]
async fn an_api_a_dispatcher_and_a_scheduler_started_at_once_on_a_new_database_all_come_up() {
    let (config, suffix) = fresh_config();
    let mut starts = vec![];
    for (role, prefix) in [
        ("api", "hookrelay API:"),
        ("dispatcher", "hookrelay metrics:"),
        ("scheduler", "hookrelay metrics:"),
    ] {
        let mut cmd = command(&config, &[role]);
        cmd.env("HOOKRELAY_METRICS_ADDR", "127.0.0.1:0");
        starts.push(async move { (role, start_and_read(cmd, prefix).await) });
    }
    let started = futures::future::join_all(starts).await;
    let client = reqwest::Client::new();
    let mut procs = vec![];
    for (role, (mut proc, url)) in started {
        let url = url.unwrap_or_else(|| {
            let status = proc.0.try_wait().ok().flatten();
            panic!("hookrelay {role} did not come up (exit status {status:?})")
        });
        let base = url
            .trim_end_matches("/api/v1")
            .trim_end_matches("/metrics")
            .to_owned();
        let ready = client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .expect("GET /readyz");
        assert_eq!(ready.status(), 200, "{role} is ready");
        procs.push((role, proc));
    }
    let env = as_test_env(config, suffix).await;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&env.db)
        .await
        .expect("migrations table");
    assert_eq!(
        applied,
        db::MIGRATOR.iter().count() as i64,
        "every migration applied once"
    );
    // A few seconds later every process still runs (a missing table fails them right away).
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (role, proc) in &mut procs {
        assert_eq!(proc.0.try_wait().expect("try_wait"), None, "{role} still running");
    }
    drop(procs);
    env.cleanup().await;
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

/// Runs `hookrelay <args>` to its end (at most a minute); its exit status and stderr.
async fn run_to_end(mut cmd: std::process::Command) -> (std::process::ExitStatus, String) {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("RUST_LOG", "off");
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || cmd.output()),
    )
    .await
    .expect("exits within a minute")
    .expect("waiter")
    .expect("runs");
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The one `hookrelay:` line on stderr says what could not be reached, where, why (once) and how
/// to fix it, and no password appears anywhere.
fn assert_said_once(stderr: &str, service: &str, address: &str, env_var: &str, password: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {stderr}");
    let line = lines[0];
    assert!(
        line.starts_with(&format!("hookrelay: cannot reach {service} at {address}: ")),
        "{line}"
    );
    assert_eq!(
        line.to_lowercase().matches("refused").count(),
        1,
        "the cause once: {line}"
    );
    assert!(line.contains("bash scripts/services.sh"), "{line}");
    assert!(line.contains(env_var), "{line}");
    assert!(!stderr.contains(password), "no password: {stderr}");
}

#[tokio::test]
async fn an_unreachable_service_is_said_once_with_its_address_and_the_fix_and_no_password() {
    let (mut config, _) = fresh_config();
    let port = closed_port();
    config.database_url = format!("postgres://postgres:pg-s3cret@127.0.0.1:{port}/hookrelay");
    for role in ["api", "dispatcher", "scheduler", "migrate", "up"] {
        let (status, stderr) = run_to_end(command(&config, &[role])).await;
        assert!(!status.success(), "{role} fails");
        assert_said_once(
            &stderr,
            "PostgreSQL",
            &format!("127.0.0.1:{port}"),
            "HOOKRELAY_DATABASE_URL",
            "pg-s3cret",
        );
    }

    let env = TestEnv::new().await;
    let mut config = env.config.clone();
    config.amqp_url = format!("amqp://guest:mq-s3cret@127.0.0.1:{port}/%2f");
    let (status, stderr) = run_to_end(command(&config, &["migrate"])).await;
    assert!(!status.success(), "migrate fails");
    assert_said_once(
        &stderr,
        "RabbitMQ",
        &format!("127.0.0.1:{port}"),
        "HOOKRELAY_AMQP_URL",
        "mq-s3cret",
    );

    // Redis is not in this test: a scheduler retries Redis at start instead of failing (the
    // next test).
    env.cleanup().await;
}

#[tokio::test]
async fn a_scheduler_without_redis_says_so_once_with_the_address_and_the_fix_and_keeps_trying() {
    let env = TestEnv::new().await;
    let port = closed_port();
    let mut config = env.config.clone();
    config.redis_url = format!("redis://:rd-s3cret@127.0.0.1:{port}/0");
    let mut cmd = command(&config, &["scheduler"]);
    cmd.env("RUST_LOG", "info")
        .env("HOOKRELAY_LOG_FORMAT", "text")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Running(cmd.spawn().expect("hookrelay starts"));
    let stdout = child.0.stdout.take().expect("stdout");
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().expect("lines").push(line);
        }
    });
    // Its retries start at 200 ms and double: several fail within four seconds.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        child.0.try_wait().expect("status").is_none(),
        "it keeps trying rather than exiting"
    );
    drop(child);
    let out = lines.lock().expect("lines").join("\n");
    let said: Vec<&str> = out.lines().filter(|l| l.contains("cannot reach Redis")).collect();
    assert_eq!(said.len(), 1, "said once, not at every retry: {out}");
    let line = said[0];
    assert!(line.contains(&format!("at 127.0.0.1:{port}: ")), "{line}");
    assert_eq!(
        line.to_lowercase().matches("refused").count(),
        1,
        "the cause once: {line}"
    );
    assert!(line.contains("bash scripts/services.sh"), "{line}");
    assert!(line.contains("HOOKRELAY_REDIS_URL"), "{line}");
    assert!(!out.contains("rd-s3cret"), "no password: {out}");
    env.cleanup().await;
}
