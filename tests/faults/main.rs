//! Fault tests: a shared service (RabbitMQ, Redis, PostgreSQL) goes away for a few seconds
//! under load and comes back; real `hookrelay` processes carry on without a restart and lose
//! no event. They stop services that every other test uses, so they are `#[ignore]`d in the
//! main run, and `scripts/test.sh` runs them afterwards, alone and one at a time:
//! `cargo test --all-features --test faults -- --ignored --test-threads=1`.
//! A static mutex serialises them anyway, and every outage is a guard whose `Drop` brings the
//! service back, on failure and on panic too.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

#[path = "../common/fleet.rs"]
mod fleet;
#[path = "../common/receiver.rs"]
mod receiver;
#[path = "../common/support.rs"]
mod support;

use fleet::{Fleet, RETRY_AT_ONCE, jobs_queued, ok_and_flaky, publish_orders};

use hookrelay_shared::testing::{TestEnv, eventually};

/// One fault test at a time, whatever `--test-threads` says.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long a service stays down: long enough for every connection to break, short enough
/// not to starve other engineers' tests of the shared service.
const OUTAGE: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug)]
enum Service {
    RabbitMq,
    Redis,
    Postgres,
}

fn run(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn pg_version() -> String {
    std::fs::read_dir("/etc/postgresql")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .unwrap_or_else(|| "15".into())
}

impl Service {
    /// Its name in `/readyz`'s `down` list.
    fn ready_name(self) -> &'static str {
        match self {
            Service::RabbitMq => "rabbitmq",
            Service::Redis => "redis",
            Service::Postgres => "postgres",
        }
    }

    fn stop(self) {
        let ok = match self {
            Service::RabbitMq => run("rabbitmqctl", &["-q", "stop_app"]),
            Service::Redis => {
                run(
                    "redis-cli",
                    &["-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"],
                ) || !self.is_up()
            }
            Service::Postgres => run(
                "pg_ctlcluster",
                &[
                    "--skip-systemctl-redirect",
                    &pg_version(),
                    "main",
                    "stop",
                    "-m",
                    "fast",
                ],
            ),
        };
        assert!(ok, "could not stop {self:?}");
    }

    /// The start commands of scripts/services.sh (not the script itself: it also drops every
    /// test database, which would break tests running beside this one).
    fn start(self) {
        match self {
            Service::RabbitMq => {
                run("rabbitmqctl", &["-q", "start_app"]);
                run("rabbitmqctl", &["-q", "await_startup", "--timeout", "60"]);
            }
            Service::Redis => {
                let _ = std::fs::create_dir_all("/var/lib/redis");
                let _ = std::fs::create_dir_all("/var/log/redis");
                run(
                    "redis-server",
                    &[
                        "--daemonize",
                        "yes",
                        "--bind",
                        "127.0.0.1",
                        "-::1",
                        "--port",
                        "6379",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        "/var/lib/redis",
                        "--logfile",
                        "/var/log/redis/ci.log",
                    ],
                );
            }
            Service::Postgres => {
                run(
                    "pg_ctlcluster",
                    &["--skip-systemctl-redirect", &pg_version(), "main", "start"],
                );
            }
        }
    }

    fn is_up(self) -> bool {
        match self {
            Service::RabbitMq => run("rabbitmq-diagnostics", &["-q", "check_running"]),
            Service::Redis => Command::new("redis-cli")
                .args(["-h", "127.0.0.1", "-p", "6379", "ping"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("PONG"))
                .unwrap_or(false),
            Service::Postgres => run("pg_isready", &["-h", "127.0.0.1", "-p", "5432", "-q"]),
        }
    }
}

/// A service stopped for as long as this lives; dropping it (also while unwinding from a
/// failed assertion) starts the service again and waits until it answers.
struct Outage(Service);

impl Outage {
    fn begin(service: Service) -> Self {
        assert!(service.is_up(), "{service:?} must be up before a fault test");
        service.watchdog();
        let guard = Outage(service);
        service.stop();
        guard
    }
}

impl Service {
    /// A detached shell that starts the service again after [`WATCHDOG`] if it is still down:
    /// `Drop` does not run when the test process itself is killed (SIGKILL, a runner timeout),
    /// and a shared service must come back whatever happens to this test.
    fn watchdog(self) {
        use std::os::unix::process::CommandExt;
        let pg = pg_version();
        let (check, start) = match self {
            Service::RabbitMq => (
                "rabbitmq-diagnostics -q check_running".to_owned(),
                "rabbitmqctl -q start_app".to_owned(),
            ),
            Service::Redis => (
                "redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG".to_owned(),
                "mkdir -p /var/lib/redis /var/log/redis; redis-server --daemonize yes --bind 127.0.0.1 -::1 \
                 --port 6379 --save '' --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log"
                    .to_owned(),
            ),
            Service::Postgres => (
                "pg_isready -h 127.0.0.1 -p 5432 -q".to_owned(),
                format!("pg_ctlcluster --skip-systemctl-redirect {pg} main start"),
            ),
        };
        let script = format!(
            "sleep {}; {check} >/dev/null 2>&1 || {{ {start}; }} >/dev/null 2>&1",
            WATCHDOG.as_secs()
        );
        let spawned = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        assert!(spawned.is_ok(), "cannot start the {self:?} watchdog: {spawned:?}");
    }
}

/// When the watchdog restarts a service the test did not bring back itself.
const WATCHDOG: Duration = Duration::from_secs(30);

impl Drop for Outage {
    fn drop(&mut self) {
        for _ in 0..60 {
            if self.0.is_up() {
                return;
            }
            self.0.start();
            std::thread::sleep(Duration::from_secs(1));
        }
        eprintln!(
            "FAULT TEST: {:?} did not come back; run `bash scripts/services.sh`",
            self.0
        );
    }
}

/// The fleet under test: two dispatchers and a scheduler, each serving `/readyz` on a port
/// of its own (printed to its log). Outages of the services are under test, not the webhook
/// circuit breaker ([`RETRY_AT_ONCE`]).
fn start_fleet(env: &TestEnv) -> Fleet {
    let mut fleet = Fleet::new(&[&RETRY_AT_ONCE[..], &[("HOOKRELAY_METRICS_ADDR", "127.0.0.1:0")]].concat());
    fleet.start_all(&env.config, &["dispatcher", "dispatcher", "scheduler"]);
    fleet
}

/// Where the undelivered deliveries are: their states in PostgreSQL, the Redis retry set and
/// the jobs queue.
async fn diagnose(env: &TestEnv) -> String {
    let states: Vec<(String, i32, Option<bool>, i64)> = sqlx::query_as(
        "SELECT state, attempt_count, next_attempt_at < now(), count(*) FROM deliveries
         WHERE state <> 'succeeded' GROUP BY 1, 2, 3",
    )
    .fetch_all(&env.db)
    .await
    .unwrap_or_default();
    let pending: i64 = match redis::Client::open(env.config.redis_url.as_str()) {
        Ok(client) => match client.get_multiplexed_async_connection().await {
            Ok(mut con) => redis::cmd("ZCARD")
                .arg(hookrelay_shared::redis_keys::retries(&env.config.namespace))
                .query_async(&mut con)
                .await
                .unwrap_or(-1),
            Err(_) => -1,
        },
        Err(_) => -1,
    };
    let queued = jobs_queued(env).await;
    let totals: (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM deliveries)")
            .fetch_one(&env.db)
            .await
            .unwrap_or((-1, -1));
    let errors: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT error, count(*) FROM attempts WHERE status = 'failed' AND error IS NOT NULL GROUP BY 1",
    )
    .fetch_all(&env.db)
    .await
    .unwrap_or_default();
    format!(
        "failed attempts by error: {errors:?}; events stored: {}, deliveries stored: {}; undelivered (state, attempt_count, overdue, n): {states:?}; \
         Redis retries: {pending}; jobs queued: {queued}",
        totals.0, totals.1
    )
}

/// `GET {url}/readyz`: status and body (0 when there was no answer).
async fn readyz(url: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    match client.get(format!("{url}/readyz")).send().await {
        Ok(r) => {
            let code = r.status().as_u16();
            (code, r.text().await.unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

async fn succeeded(env: &TestEnv) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE state = 'succeeded'")
        .fetch_one(&env.db)
        .await
        .unwrap_or(-1)
}

/// Publishes a first batch, lets the processes get busy, takes `service` away for
/// [`OUTAGE`], brings it back, publishes a second batch, and checks every event reached both
/// webhooks (the flaky one through a retry) with the same processes still running.
async fn survives_outage_of(service: Service) {
    let _serial = SERIAL.lock().await;
    const N: usize = 200;
    let env = TestEnv::new().await;
    let (_, seen) = ok_and_flaky(&env).await;
    let mut fleet = start_fleet(&env);
    let mut ids = publish_orders(&env, "before", 0..N).await;
    assert!(
        eventually(Duration::from_secs(60), || async {
            seen.per_event("/ok", None).len() >= N / 2
        })
        .await,
        "traffic started before the outage"
    );
    let ops: Vec<String> = {
        let mut v = vec![];
        for i in 0..fleet.len() {
            v.push(fleet.ops_url(i).await);
        }
        v
    };
    for url in &ops {
        assert_eq!(readyz(url).await.0, 200, "{url}/readyz before the outage");
    }
    let mut not_ready = vec![];
    {
        let _outage = Outage::begin(service);
        let until = tokio::time::Instant::now() + OUTAGE;
        // While the service is away, every process says so on /readyz, naming it.
        for url in &ops {
            let mut last = (0, String::new());
            while tokio::time::Instant::now() < until {
                last = readyz(url).await;
                if last.0 == 503 && last.1.contains(service.ready_name()) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            not_ready.push(last);
        }
        tokio::time::sleep_until(until).await;
        fleet.assert_running();
    }
    for (url, (code, body)) in ops.iter().zip(&not_ready) {
        assert!(
            *code == 503 && body.contains(service.ready_name()),
            "{url}/readyz during the {service:?} outage: {code} {body}"
        );
    }
    // And ready again without a restart once it is back.
    for url in &ops {
        let back = eventually(Duration::from_secs(60), || async { readyz(url).await.0 == 200 }).await;
        assert!(back, "{url}/readyz ready again after the {service:?} outage");
    }
    ids.extend(publish_orders(&env, "after", N..2 * N).await);

    let done = eventually(Duration::from_secs(150), || async {
        succeeded(&env).await == 4 * N as i64
    })
    .await;
    fleet.assert_running();
    let (ok, flaky) = (seen.per_event("/ok", None), seen.per_event("/flaky", None));
    let missing: Vec<&String> = ids
        .iter()
        .filter(|id| !ok.contains_key(*id) || flaky.get(*id).copied().unwrap_or(0) < 2)
        .collect();
    if !(done && missing.is_empty()) {
        panic!(
            "after a {service:?} outage: {} of {} deliveries succeeded; {} events not delivered \
             (first: {:?}); {}\n{}",
            succeeded(&env).await,
            4 * N,
            missing.len(),
            missing.first(),
            diagnose(&env).await,
            fleet.logs()
        );
    }
    drop(fleet);
    env.cleanup().await;
}

#[tokio::test]
#[ignore = "stops the shared RabbitMQ: run alone with --ignored"]
async fn dispatchers_and_schedulers_carry_on_after_rabbitmq_restarts() {
    survives_outage_of(Service::RabbitMq).await;
}

#[tokio::test]
#[ignore = "stops the shared Redis: run alone with --ignored"]
async fn retries_survive_a_redis_restart_that_loses_every_key() {
    survives_outage_of(Service::Redis).await;
}

#[tokio::test]
#[ignore = "stops the shared PostgreSQL: run alone with --ignored"]
async fn nothing_is_lost_while_postgresql_restarts() {
    survives_outage_of(Service::Postgres).await;
}
