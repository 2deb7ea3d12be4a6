//! Start-up of the real binary: every component migrates a new database on its own (also when
//! several start at once), a service that can't be reached is said once with its address and
//! the fix, and `hookrelay up` opens private targets only by default on loopback.

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

/// Creates a webhook to a loopback URL through the API of a `hookrelay up` started with
/// `adjust`; the status the API answers (201 allowed, 422 refused).
async fn private_target_status(
    env: &TestEnv,
    token: &str,
    adjust: impl FnOnce(&mut std::process::Command),
) -> u16 {
    let mut cmd = command(&env.config, &["up"]);
    cmd.env_remove("HOOKRELAY_ALLOW_PRIVATE_TARGETS");
    adjust(&mut cmd);
    let (proc, url) = start_and_read(cmd, "hookrelay API:").await;
    let url = url.expect("hookrelay up prints its API address");
    // An API on 0.0.0.0 is reached on loopback.
    let url = url.replace("0.0.0.0", "127.0.0.1");
    let res = reqwest::Client::new()
        .post(format!("{url}/webhooks"))
        .bearer_auth(token)
        .json(&serde_json::json!({"name": "local", "url": "http://127.0.0.1:9/in", "event_types": ["*"]}))
        .send()
        .await
        .expect("sent");
    let status = res.status().as_u16();
    if status == 422 {
        let body = res.text().await.unwrap_or_default();
        assert!(body.contains("url"), "the refusal names the url: {body}");
    }
    drop(proc);
    status
}

/// The `ENV` of `deploy/Dockerfile` (`KEY=value` pairs, continuation lines joined).
fn dockerfile_env() -> Vec<(String, String)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/Dockerfile");
    let text = std::fs::read_to_string(&path).expect("deploy/Dockerfile");
    let joined = text.replace("\\\n", " ");
    assert!(
        joined.lines().any(|l| l.trim() == r#"CMD ["up"]"#),
        "the image runs `up` by default"
    );
    joined
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ENV "))
        .flat_map(|rest| rest.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

#[tokio::test]
async fn up_allows_private_targets_by_default_only_on_loopback_and_an_explicit_false_always_wins() {
    let env = TestEnv::new().await;
    let out = command(
        &env.config,
        &["tokens", "create", "--name", "t", "--role", "admin"],
    )
    .output()
    .expect("tokens create runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let token = stdout.lines().last().expect("token").trim().to_owned();

    // Nothing said, API on loopback: a local trial run, private targets allowed.
    assert_eq!(private_target_status(&env, &token, |_| {}).await, 201);
    // An explicit false in the environment.
    assert_eq!(
        private_target_status(&env, &token, |c| {
            c.env("HOOKRELAY_ALLOW_PRIVATE_TARGETS", "false");
        })
        .await,
        422
    );
    // An explicit false in the TOML file, the environment silent.
    let file = std::env::temp_dir().join(format!("hookrelay-{}.toml", env.config.namespace));
    std::fs::write(&file, "allow_private_targets = false\n").expect("config file");
    let status = private_target_status(&env, &token, |c| {
        c.env("HOOKRELAY_CONFIG", &file);
    })
    .await;
    let _ = std::fs::remove_file(&file);
    assert_eq!(status, 422, "false in HOOKRELAY_CONFIG wins");
    // Nothing said, API on every interface.
    assert_eq!(
        private_target_status(&env, &token, |c| {
            c.env("HOOKRELAY_API_ADDR", "0.0.0.0:0");
        })
        .await,
        422
    );
    // The Docker image's environment (its port made 0 so tests can run side by side).
    let image_env = dockerfile_env();
    assert!(
        image_env
            .iter()
            .any(|(k, v)| k == "HOOKRELAY_API_ADDR" && v.starts_with("0.0.0.0:")),
        "{image_env:?}"
    );
    assert_eq!(
        private_target_status(&env, &token, |c| {
            for (k, v) in &image_env {
                c.env(k, v);
            }
            c.env("HOOKRELAY_API_ADDR", "0.0.0.0:0")
                .env("HOOKRELAY_LOG_FORMAT", "text");
        })
        .await,
        422,
        "the image's default command does not open private targets"
    );
    // An explicit true is honoured everywhere.
    assert_eq!(
        private_target_status(&env, &token, |c| {
            c.env("HOOKRELAY_API_ADDR", "0.0.0.0:0")
                .env("HOOKRELAY_ALLOW_PRIVATE_TARGETS", "true");
        })
        .await,
        201
    );
    env.cleanup().await;
}

#[tokio::test]
async fn the_dead_letter_queue_is_bounded_and_an_unbounded_one_from_before_keeps_working() {
    use lapin::{
        options::QueueDeclareOptions,
        types::{AMQPValue, FieldTable, ShortString},
    };
    let env = TestEnv::new().await;
    let conn = amqp::connect(&env.config.amqp_url, "test")
        .await
        .expect("RabbitMQ is up");
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let mut unbounded = FieldTable::default();
    unbounded.insert(
        ShortString::from("x-queue-type"),
        AMQPValue::LongString("quorum".into()),
    );
    // The queue TestEnv declared carries the bound: the same arguments are equivalent, none are not.
    let ch = conn.create_channel().await.expect("channel");
    ch.queue_declare(
        env.names.dead_queue.as_str().into(),
        durable,
        amqp::dead_queue_arguments(),
    )
    .await
    .expect("the bounded declaration is equivalent");
    let ch = conn.create_channel().await.expect("channel");
    assert!(
        ch.queue_declare(env.names.dead_queue.as_str().into(), durable, unbounded.clone())
            .await
            .is_err(),
        "an unbounded declaration is refused, so the bound is on the queue"
    );

    // A deployment from before the bound: its unbounded queue is kept, and declaring again
    // neither fails nor closes anyone else's channel.
    let old = amqp::Names::new(&format!("{}_old", env.config.namespace));
    let ch = conn.create_channel().await.expect("channel");
    ch.queue_declare(old.dead_queue.as_str().into(), durable, unbounded)
        .await
        .expect("old-style queue");
    assert_eq!(
        amqp::declare_dead_queue(&conn, &old).await.expect("no error"),
        amqp::DeadQueue::ExistingUnbounded
    );
    assert!(ch.status().connected(), "the caller's channel stays open");
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    ch.queue_declare(old.dead_queue.as_str().into(), passive, FieldTable::default())
        .await
        .expect("the old queue is still there");
    let _ = ch
        .queue_delete(old.dead_queue.as_str().into(), Default::default())
        .await;
    amqp::close(&conn, 200, "done").await;
    env.cleanup().await;
}
