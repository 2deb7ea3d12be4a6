//! Fleets of real `hookrelay` processes on one namespace, for the process tests (`tests/it`,
//! `tests/faults`), and the workload they share: `order.*` webhooks and `order.paid` events.
//! Included by both test binaries with `#[path]`, beside `support.rs` (the command line).
#![allow(dead_code)] // each test binary uses a different subset

use std::{
    collections::BTreeSet,
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

use hookrelay_shared::{
    Config, amqp,
    testing::TestEnv,
    webhooks::{self, NewWebhook},
};

use serde_json::{Value, json};

use crate::{
    receiver::{Seen, start_receiver},
    support,
};

/// The settings of a fleet on [`ok_and_flaky`]: a failed attempt is retried after 1 s, and
/// `/flaky`'s circuit never opens (it would defer the rest for the cool-down; the breaker has
/// tests of its own, `tests/it/isolation.rs`).
pub const RETRY_AT_ONCE: [(&str, &str); 2] = [
    ("HOOKRELAY_RETRY_SCHEDULE", "1s"),
    ("HOOKRELAY_CIRCUIT_FAILURES", "1000000"),
];

struct Proc {
    role: String,
    child: Child,
    /// Its stdout and stderr, read back when it misbehaves (kept when the test fails).
    log: PathBuf,
}

/// Child processes SIGKILLed when dropped, so a failing test leaves none behind.
pub struct Fleet {
    env: Vec<(String, String)>,
    procs: Vec<Proc>,
    /// Processes the test stopped on purpose.
    ended: BTreeSet<usize>,
}

impl Fleet {
    /// Short timings so a lost attempt is re-fired within seconds, not minutes; `extra` is
    /// more `HOOKRELAY_*` for every process of the fleet.
    pub fn new(extra: &[(&str, &str)]) -> Self {
        let mut env: Vec<(String, String)> = [
            ("HOOKRELAY_REQUEST_TIMEOUT", "2s"),
            ("HOOKRELAY_ATTEMPT_LEASE", "4s"),
            ("HOOKRELAY_SHUTDOWN_GRACE", "10s"),
            ("RUST_LOG", "info"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        // A later value of a key wins, as it would in a shell.
        env.reverse();
        let mut seen = BTreeSet::new();
        env.retain(|(k, _)| seen.insert(k.clone()));
        Self {
            env,
            procs: vec![],
            ended: BTreeSet::new(),
        }
    }

    /// Starts `hookrelay <role>`, logging to a file of its own; its index in the fleet.
    pub fn start(&mut self, config: &Config, role: &str) -> usize {
        let i = self.procs.len();
        let mut cmd = support::command(config, &[role]);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let log = std::env::temp_dir().join(format!("hookrelay-fleet-{}-{i}.log", config.namespace));
        let file = std::fs::File::create(&log).expect("log file");
        let err = file.try_clone().expect("log file");
        let child = cmd
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("hookrelay starts");
        self.procs.push(Proc {
            role: role.to_owned(),
            child,
            log,
        });
        i
    }

    /// Starts one process per role.
    pub fn start_all(&mut self, config: &Config, roles: &[&str]) {
        for role in roles {
            self.start(config, role);
        }
    }

    pub fn len(&self) -> usize {
        self.procs.len()
    }

    pub fn pid(&self, i: usize) -> u32 {
        self.procs[i].child.id()
    }

    fn log_text(&self, i: usize) -> String {
        std::fs::read_to_string(&self.procs[i].log).unwrap_or_default()
    }

    /// The base URL of process `i`'s operations server (`HOOKRELAY_METRICS_ADDR`), read from
    /// the line it prints at start.
    pub async fn ops_url(&self, i: usize) -> String {
        for _ in 0..300 {
            if let Some(url) = self.log_text(i).lines().find_map(|l| {
                l.strip_prefix("hookrelay metrics: ")?
                    .strip_suffix("/metrics")
                    .map(str::to_owned)
            }) {
                return url;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("process {i} printed no operations address\n{}", self.logs());
    }

    pub fn sigkill(&mut self, i: usize) {
        self.ended.insert(i);
        let child = &mut self.procs[i].child;
        child.kill().expect("SIGKILL");
        let _ = child.wait();
    }

    /// SIGTERMs process `i` and waits at most `within` for it to exit; its exit status.
    pub async fn sigterm(&mut self, i: usize, within: Duration) -> Option<ExitStatus> {
        self.ended.insert(i);
        let status = Command::new("kill")
            .args(["-TERM", &self.pid(i).to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {}", self.pid(i));
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if let Some(s) = self.procs[i].child.try_wait().expect("try_wait") {
                return Some(s);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "{} {i} (pid {}) still running {within:?} after SIGTERM\n{}",
            self.procs[i].role,
            self.pid(i),
            self.diagnose(i)
        );
        None
    }

    /// SIGTERMs every process in turn; each must exit 0 within `within`.
    pub async fn sigterm_all_exit_0(&mut self, within: Duration) {
        for i in 0..self.len() {
            let status = self.sigterm(i, within).await;
            assert_eq!(
                status.map(|s| s.code()),
                Some(Some(0)),
                "process {i} exits 0 on SIGTERM"
            );
        }
    }

    /// Every process not stopped on purpose is still running (none exited on an error).
    pub fn assert_running(&mut self) {
        let exited = self.procs.iter_mut().enumerate().find_map(|(i, p)| {
            if self.ended.contains(&i) {
                return None;
            }
            let status = p.child.try_wait().expect("try_wait")?;
            Some((p.role.clone(), status))
        });
        if let Some((role, status)) = exited {
            panic!("a {role} exited early with {status}\n{}", self.logs());
        }
    }

    /// What process `i` is doing: its log's tail and every thread's stack (gdb, if present).
    pub fn diagnose(&self, i: usize) -> String {
        let text = self.log_text(i);
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        let mut out = format!(
            "--- last log lines of {} ---\n{tail}\n",
            self.procs[i].log.display()
        );
        if let Ok(o) = Command::new("gdb")
            .args([
                "-batch",
                "-p",
                &self.pid(i).to_string(),
                "-ex",
                "thread apply all bt 30",
            ])
            .output()
        {
            out.push_str("--- threads ---\n");
            out.push_str(&String::from_utf8_lossy(&o.stdout));
        }
        out
    }

    /// Of every process: the errors and warnings it logged (other than slow pool
    /// acquisitions), then its last lines.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (i, p) in self.procs.iter().enumerate() {
            let text = self.log_text(i);
            let lines: Vec<&str> = text.lines().collect();
            let notable: Vec<&str> = lines
                .iter()
                .filter(|l| (l.contains("ERROR") || l.contains("WARN")) && !l.contains("slow threshold"))
                .copied()
                .collect();
            let notable = notable[notable.len().saturating_sub(30)..].join("\n");
            let tail = lines[lines.len().saturating_sub(10)..].join("\n");
            out.push_str(&format!(
                "--- {} (pid {}), {} ---\n{notable}\n[...]\n{tail}\n",
                p.role,
                p.child.id(),
                p.log.display()
            ));
        }
        out
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        // Logs are kept when the test failed, to be read.
        if !std::thread::panicking() {
            for p in &self.procs {
                let _ = std::fs::remove_file(&p.log);
            }
        }
    }
}

/// A webhook subscribed to `order.*`.
pub async fn order_webhook(env: &TestEnv, name: &str, url: String) {
    webhooks::create(
        &env.db,
        NewWebhook {
            name: name.into(),
            url,
            event_types: vec!["order.*".into()],
            enabled: true,
            ..Default::default()
        },
    )
    .await
    .expect("webhook created");
}

/// A receiver with two `order.*` webhooks on it: `ok` (answers 200) and `flaky` (fails every
/// first attempt, so each event reaches it twice).
pub async fn ok_and_flaky(env: &TestEnv) -> (String, Seen) {
    let (base, seen) = start_receiver();
    for path in ["ok", "flaky"] {
        order_webhook(env, path, format!("{base}/{path}")).await;
    }
    (base, seen)
}

/// Publishes the events `evt_{prefix}_{i}` for `i` in `range` (type `order.paid`), with
/// confirms; their ids.
pub async fn publish_orders(env: &TestEnv, prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    let events: Vec<(String, &str, Value)> = range
        .map(|i| (format!("evt_{prefix}_{i}"), "order.paid", json!({"i": i})))
        .collect();
    publish_events(env, &events).await;
    events.into_iter().map(|(id, ..)| id).collect()
}

/// Publishes `(id, type, data)` events, all at once, and waits for the broker's confirms.
pub async fn publish_events(env: &TestEnv, events: &[(String, &str, Value)]) {
    let conn = amqp::connect(&env.config.amqp_url, "test")
        .await
        .expect("RabbitMQ");
    let ch = amqp::confirm_channel(&conn).await.expect("channel");
    let mut confirms = Vec::with_capacity(events.len());
    for (id, event_type, data) in events {
        let body = json!({"id": id, "type": event_type, "data": data});
        confirms.push(
            ch.basic_publish(
                env.names.events_exchange.as_str().into(),
                (*event_type).into(),
                Default::default(),
                body.to_string().as_bytes(),
                lapin::BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("published"),
        );
    }
    for c in confirms {
        assert!(c.await.expect("confirm").is_ack());
    }
    amqp::close(&conn, 200, "done").await;
}

/// The one number `sql` (a `SELECT count(*) ...`) returns.
pub async fn count(env: &TestEnv, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&env.db)
        .await
        .expect("count query")
}

/// Jobs waiting on `{ns}.deliveries` (-1 when the broker does not say).
pub async fn jobs_queued(env: &TestEnv) -> i64 {
    let declared = env
        .channel()
        .await
        .queue_declare(
            env.names.deliveries_queue.as_str().into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await;
    declared.map_or(-1, |q| i64::from(q.message_count()))
}
