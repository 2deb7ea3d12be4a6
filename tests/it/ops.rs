//! Operations: the deploy files are valid and agree with the binary (YAML/JSON parse, promtool,
//! every metric named in alerts and dashboard is exported), the standalone operations server
//! answers on the real services, and several processes share one namespace without losing work.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use hookrelay_shared::{
    duration::parse_duration,
    metrics::Metrics,
    ops,
    testing::{TestEnv, eventually},
    webhooks::{self, NewWebhook},
};
use serde::Deserialize;
use serde_norway::Value as Yaml;
use tokio_util::sync::CancellationToken;

use crate::{receiver::start_receiver, support};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every document of a (possibly multi-document) YAML file.
fn yaml_documents(path: &Path) -> Vec<Yaml> {
    let text = read(path);
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| {
            let mut v = Yaml::deserialize(doc)
                .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
            // compose.yaml uses `<<:` merge keys; resolve them like Docker does.
            v.apply_merge()
                .unwrap_or_else(|e| panic!("{}: bad merge key: {e}", path.display()));
            v
        })
        .collect()
}

fn yaml(path: &Path) -> Yaml {
    let mut docs = yaml_documents(path);
    assert_eq!(docs.len(), 1, "{} should hold one YAML document", path.display());
    docs.remove(0)
}

fn str_at<'a>(v: &'a Yaml, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(*k)).and_then(Yaml::as_str)
}

#[test]
fn every_yaml_and_json_file_in_deploy_parses() {
    let mut files = vec![];
    files_under(&deploy_dir(), &mut files);
    let mut checked = 0;
    for path in &files {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => {
                assert!(!yaml_documents(path).is_empty(), "{} is empty", path.display());
                checked += 1;
            }
            Some("json") => {
                serde_json::from_str::<serde_json::Value>(&read(path))
                    .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
                checked += 1;
            }
            _ => {}
        }
    }
    // compose, prometheus (3), grafana (3), k8s (8): a missing file is a failure too.
    assert!(
        checked >= 15,
        "only {checked} YAML/JSON files under deploy/: {files:?}"
    );
}

#[test]
fn compose_runs_three_dispatchers_two_schedulers_and_two_apis_with_health_checks() {
    let compose = yaml(&deploy_dir().join("compose.yaml"));
    let services = compose.get("services").expect("compose.yaml has services");
    for (name, command, replicas) in [
        ("dispatcher", "dispatcher", 3),
        ("scheduler", "scheduler", 2),
        ("api", "api", 2),
    ] {
        let s = services
            .get(name)
            .unwrap_or_else(|| panic!("compose.yaml has no service {name}"));
        assert_eq!(s["command"][0].as_str(), Some(command), "{name} command");
        assert_eq!(
            s["deploy"]["replicas"].as_u64(),
            Some(replicas),
            "{name} replicas"
        );
        assert!(s.get("healthcheck").is_some(), "{name} has no healthcheck");
        let env = &s["environment"];
        for key in [
            "HOOKRELAY_AMQP_URL",
            "HOOKRELAY_REDIS_URL",
            "HOOKRELAY_DATABASE_URL",
            "HOOKRELAY_METRICS_ADDR",
        ] {
            assert!(env.get(key).is_some(), "{name} lacks {key}");
        }
        let grace = parse_duration(env["HOOKRELAY_SHUTDOWN_GRACE"].as_str().expect("grace is set"))
            .expect("grace parses");
        let stop =
            parse_duration(s["stop_grace_period"].as_str().expect("stop_grace_period")).expect("parses");
        assert!(
            stop > grace,
            "{name}: stop_grace_period {stop:?} must exceed HOOKRELAY_SHUTDOWN_GRACE {grace:?}"
        );
    }
    for name in [
        "rabbitmq",
        "redis",
        "postgres",
        "prometheus",
        "grafana",
        "migrate",
    ] {
        assert!(services.get(name).is_some(), "compose.yaml has no service {name}");
    }
    // Every hookrelay component is scraped.
    let prom = yaml(&deploy_dir().join("prometheus/prometheus.yml"));
    let scraped: BTreeSet<&str> = prom["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs")
        .iter()
        .flat_map(|job| job["dns_sd_configs"].as_sequence().into_iter().flatten())
        .flat_map(|sd| sd["names"].as_sequence().into_iter().flatten())
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(scraped, BTreeSet::from(["api", "dispatcher", "scheduler"]));
}

#[test]
fn kubernetes_deployments_probe_health_and_outlast_the_shutdown_grace() {
    let k8s = deploy_dir().join("k8s");
    let config = yaml(&k8s.join("configmap.yaml"));
    let grace = parse_duration(
        str_at(&config, &["data", "HOOKRELAY_SHUTDOWN_GRACE"]).expect("configmap sets the grace"),
    )
    .expect("grace parses");
    let mut deployments = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    let mut files = vec![];
    files_under(&k8s, &mut files);
    for path in files {
        for doc in yaml_documents(&path) {
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            kinds.insert(kind.clone());
            if kind != "Deployment" {
                continue;
            }
            let name = str_at(&doc, &["metadata", "name"]).expect("named").to_owned();
            let pod = &doc["spec"]["template"]["spec"];
            let term = pod["terminationGracePeriodSeconds"]
                .as_u64()
                .expect("terminationGracePeriodSeconds");
            assert!(
                Duration::from_secs(term) > grace,
                "{name}: terminationGracePeriodSeconds {term} <= {grace:?}"
            );
            let container = &pod["containers"][0];
            assert_eq!(
                str_at(container, &["livenessProbe", "httpGet", "path"]),
                Some("/healthz"),
                "{name}"
            );
            assert_eq!(
                str_at(container, &["readinessProbe", "httpGet", "path"]),
                Some("/readyz"),
                "{name}"
            );
            deployments.insert(name);
        }
    }
    assert_eq!(
        deployments,
        BTreeSet::from([
            "hookrelay-api".to_owned(),
            "hookrelay-dispatcher".to_owned(),
            "hookrelay-scheduler".to_owned()
        ])
    );
    for kind in [
        "ConfigMap",
        "Secret",
        "Service",
        "HorizontalPodAutoscaler",
        "ScaledObject",
    ] {
        assert!(
            kinds.contains(kind),
            "no {kind} under deploy/k8s (have {kinds:?})"
        );
    }
    let keda = yaml_documents(&k8s.join("keda.yaml"));
    let queues: BTreeSet<&str> = keda
        .iter()
        .flat_map(|d| d["spec"]["triggers"].as_sequence().into_iter().flatten())
        .filter_map(|t| str_at(t, &["metadata", "queueName"]))
        .collect();
    assert!(queues.contains("hookrelay.events"), "KEDA scales on {queues:?}");
}

/// Runs promtool with `args` in deploy/prometheus, failing with a clear message when absent.
fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(deploy_dir().join("prometheus"))
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool is needed to check the alert rules ({e}): install Debian's `prometheus` package (scripts/services.sh does)")
        });
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    promtool(&["check", "rules", "alerts.yml"]);
    promtool(&["test", "rules", "alerts.test.yml"]);
    promtool(&["check", "config", "prometheus.yml"]);
}

/// A registry with one child in every labelled family: prometheus-client writes nothing, not
/// even `# TYPE`, for a family without children. A family added to `Metrics` must be touched
/// here before alerts or the dashboard may use it.
fn touched_metrics() -> std::sync::Arc<Metrics> {
    let m = Metrics::new();
    m.events_consumed.get_or_create(&[("outcome", "accepted")]).inc();
    m.events_dead_lettered
        .get_or_create(&[("reason", "invalid_json")])
        .inc();
    m.attempt(false, "automatic", None);
    m.retention_purged.get_or_create(&[("table", "attempts")]).inc();
    m.amqp_errors.get_or_create(&[("op", "publish")]).inc();
    m.db_operation
        .get_or_create(&[("op", "insert_attempts")])
        .observe(0.01);
    m.redis_operation.get_or_create(&[("op", "claim")]).observe(0.001);
    m.api_requests
        .get_or_create(&[("route_class", "deliveries"), ("status_class", "2xx")])
        .inc();
    m
}

/// Every sample name the binary exports, derived from the `# TYPE` lines (`_total` for
/// counters; `_bucket`, `_sum`, `_count` for histograms), checked against the sample lines.
fn exported_names() -> BTreeSet<String> {
    let text = touched_metrics().render();
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        if parts.next() != Some("#") || parts.next() != Some("TYPE") {
            continue;
        }
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            "summary" => &["", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        assert!(
            names.contains(name),
            "{name} is exported but not derived from # TYPE: {names:?}"
        );
    }
    names
}

/// Every `hookrelay_*` identifier in `text`.
fn referenced_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("hookrelay_") {
        let start = i + pos;
        let preceded = start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        // `hookrelay_*` in a comment is the prefix, not a metric.
        if !preceded && end > start + "hookrelay_".len() {
            out.insert(text[start..end].to_owned());
        }
        i = end;
    }
    out
}

#[test]
fn every_metric_in_the_alert_rules_and_the_dashboard_is_exported() {
    let exported = exported_names();
    let rules = read(&deploy_dir().join("prometheus/alerts.yml"));
    let dashboard: serde_json::Value =
        serde_json::from_str(&read(&deploy_dir().join("grafana/hookrelay.json"))).expect("dashboard JSON");
    let mut dash_exprs = String::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            dash_exprs.push_str(target["expr"].as_str().unwrap_or_default());
            dash_exprs.push('\n');
        }
    }
    for (what, text, at_least) in [
        ("alerts.yml", rules.as_str(), 8),
        ("hookrelay.json", dash_exprs.as_str(), 12),
    ] {
        let referenced = referenced_names(text);
        assert!(referenced.len() >= at_least, "{what} names only {referenced:?}");
        let missing: Vec<_> = referenced.difference(&exported).collect();
        assert!(
            missing.is_empty(),
            "{what} uses metrics the binary does not export: {missing:?}"
        );
    }
    // The contract's names are all on the dashboard.
    let on_dashboard = referenced_names(&dash_exprs);
    for name in [
        "hookrelay_events_consumed_total",
        "hookrelay_delivery_attempts_total",
        "hookrelay_delivery_duration_seconds_bucket",
        "hookrelay_retries_pending",
        "hookrelay_retry_lateness_seconds_bucket",
        "hookrelay_deliveries_exhausted_total",
        "hookrelay_events_dead_lettered_total",
        "hookrelay_deliveries_in_flight",
    ] {
        assert!(on_dashboard.contains(name), "the dashboard does not show {name}");
    }
}

#[tokio::test]
async fn the_operations_server_is_ready_when_every_service_is_up() {
    let env = TestEnv::new().await;
    let stop = CancellationToken::new();
    let (addr, task) = ops::spawn(env.context(), "127.0.0.1:0".parse().expect("addr"), stop.clone())
        .await
        .expect("binds");
    let resp = reqwest::get(format!("http://{addr}/readyz"))
        .await
        .expect("GET /readyz");
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["down"], serde_json::json!([]));
    stop.cancel();
    task.await.expect("joins").expect("stops cleanly");
    env.cleanup().await;
}

// ---------------------------------------------------------------------------------------
// Several real processes on one namespace.
// ---------------------------------------------------------------------------------------

async fn webhook(env: &TestEnv, name: &str, url: String) {
    webhooks::create(
        &env.db,
        NewWebhook {
            name: name.into(),
            url,
            event_types: vec!["order.*".into()],
            enabled: true,
            retry_policy: None,
            secret: None,
            max_in_flight: None,
            rate_limit: None,
            ..Default::default()
        },
    )
    .await
    .expect("webhook created");
}

/// Publishes `n` events `evt_{prefix}_{i}` with confirms.
async fn publish(env: &TestEnv, prefix: &str, n: usize) -> Vec<String> {
    let ch = env.channel().await;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("evt_{prefix}_{i}");
        let body = serde_json::json!({"id": id, "type": "order.paid", "data": {"i": i}});
        env.publish_raw(&ch, "order.paid", body.to_string().as_bytes())
            .await;
        ids.push(id);
    }
    ids
}

async fn count(env: &TestEnv, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&env.db)
        .await
        .expect("count query")
}

/// Waits until `sql` returns the same value for `quiet` (no more work moving).
async fn settled(env: &TestEnv, sql: &'static str, quiet: Duration) -> i64 {
    let mut last = count(env, sql).await;
    let mut since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = count(env, sql).await;
        if now != last {
            last = now;
            since = tokio::time::Instant::now();
        } else if since.elapsed() >= quiet {
            return now;
        }
    }
}

/// Child processes killed (SIGKILL) when dropped, so a failing test leaves none behind.
struct Fleet {
    env: Vec<(&'static str, String)>,
    procs: Vec<(String, Child)>,
    /// Processes the test stopped on purpose.
    ended: BTreeSet<usize>,
    /// Each process's log file (by index; empty for processes started elsewhere).
    logs: Vec<PathBuf>,
}

impl Fleet {
    /// Short timings so a lost attempt is re-fired within seconds, not minutes.
    fn new(extra: &[(&'static str, &str)]) -> Self {
        let mut env = vec![
            ("HOOKRELAY_REQUEST_TIMEOUT", "2s".to_owned()),
            ("HOOKRELAY_ATTEMPT_LEASE", "4s".to_owned()),
            ("HOOKRELAY_SHUTDOWN_GRACE", "10s".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        Self {
            env,
            procs: vec![],
            ended: BTreeSet::new(),
            logs: vec![],
        }
    }

    fn start(&mut self, config: &hookrelay_shared::Config, role: &str) -> usize {
        let mut cmd = support::command(config, &[role]);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        // Each process logs to its own file, read back when it misbehaves.
        let log = self.log_path(config, self.procs.len());
        let file = std::fs::File::create(&log).expect("log file");
        let err = file.try_clone().expect("log file");
        let child = cmd
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("hookrelay starts");
        self.procs.push((role.to_owned(), child));
        self.logs.push(log);
        self.procs.len() - 1
    }

    fn log_path(&self, config: &hookrelay_shared::Config, i: usize) -> PathBuf {
        std::env::temp_dir().join(format!("hookrelay-fleet-{}-{i}.log", config.namespace))
    }

    /// What process `i` is doing: its log's tail and every thread's stack (gdb, if present).
    fn diagnose(&self, i: usize) -> String {
        let mut out = String::new();
        if let Some(log) = self.logs.get(i) {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            out.push_str(&format!("--- last log lines of {} ---\n{tail}\n", log.display()));
        }
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

    fn sigkill(&mut self, i: usize) {
        self.ended.insert(i);
        let child = &mut self.procs[i].1;
        child.kill().expect("SIGKILL");
        let _ = child.wait();
    }

    fn pid(&self, i: usize) -> u32 {
        self.procs[i].1.id()
    }

    /// SIGTERMs process `i` and waits at most `within` for it to exit; its exit status.
    async fn sigterm(&mut self, i: usize, within: Duration) -> Option<std::process::ExitStatus> {
        self.ended.insert(i);
        let status = Command::new("kill")
            .args(["-TERM", &self.pid(i).to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {}", self.pid(i));
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if let Some(s) = self.procs[i].1.try_wait().expect("try_wait") {
                return Some(s);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "{} {i} (pid {}) still running {within:?} after SIGTERM\n{}",
            self.procs[i].0,
            self.pid(i),
            self.diagnose(i)
        );
        None
    }

    /// Every process still running: alive (not exited early with an error).
    fn assert_running(&mut self) {
        for (i, (role, child)) in self.procs.iter_mut().enumerate() {
            if self.ended.contains(&i) {
                continue;
            }
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!("a {role} exited early with {status}");
            }
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (_, child) in &mut self.procs {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Logs are kept when the test failed, to be read.
        if !std::thread::panicking() {
            for log in &self.logs {
                let _ = std::fs::remove_file(log);
            }
        }
    }
}

const WAIT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn three_dispatchers_and_two_schedulers_deliver_every_event_once_and_fire_each_retry_once() {
    const EVENTS: usize = 300;
    let env = TestEnv::new().await;
    let (base, seen) = start_receiver();
    webhook(&env, "ok", format!("{base}/ok")).await;
    webhook(&env, "flaky", format!("{base}/flaky")).await;
    // `/flaky` fails every first attempt: its circuit would open and defer the rest for the
    // cool-down. The breaker has tests of its own (tests/it/isolation.rs); here it stays closed.
    let mut fleet = Fleet::new(&[
        ("HOOKRELAY_RETRY_SCHEDULE", "1s"),
        ("HOOKRELAY_CIRCUIT_FAILURES", "1000000"),
    ]);
    for role in ["dispatcher", "dispatcher", "dispatcher", "scheduler", "scheduler"] {
        fleet.start(&env.config, role);
    }
    let ids = publish(&env, "fleet", EVENTS).await;

    let done = eventually(WAIT, || async {
        count(&env, "SELECT count(*) FROM deliveries WHERE state = 'succeeded'").await == 2 * EVENTS as i64
    })
    .await;
    fleet.assert_running();
    assert!(done, "every delivery succeeded");
    // Give a duplicate (a retry fired twice) the time to show up before counting.
    let attempts = settled(&env, "SELECT count(*) FROM attempts", Duration::from_secs(3)).await;

    assert_eq!(attempts, 3 * EVENTS as i64, "ok once, flaky twice per event");
    let ok = seen.per_event("/ok", None);
    let first = seen.per_event("/flaky", Some(1));
    let retry = seen.per_event("/flaky", Some(2));
    for id in &ids {
        assert_eq!(ok.get(id), Some(&1), "{id} reached /ok exactly once");
        assert_eq!(first.get(id), Some(&1), "{id}: one first attempt on /flaky");
        assert_eq!(retry.get(id), Some(&1), "{id}: its retry fired exactly once");
    }
    assert_eq!(seen.all().len(), 3 * EVENTS, "no other request");
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM attempts WHERE trigger = 'automatic' AND status = 'success'"
        )
        .await,
        EVENTS as i64
    );
    for i in 0..fleet.procs.len() {
        let status = fleet.sigterm(i, Duration::from_secs(15)).await;
        assert_eq!(
            status.map(|s| s.code()),
            Some(Some(0)),
            "process {i} exits 0 on SIGTERM"
        );
    }
    drop(fleet);
    env.cleanup().await;
}

#[tokio::test]
async fn killing_a_dispatcher_and_a_scheduler_with_sigkill_loses_nothing() {
    const EVENTS: usize = 600;
    let env = TestEnv::new().await;
    let (base, seen) = start_receiver();
    webhook(&env, "ok", format!("{base}/ok")).await;
    webhook(&env, "flaky", format!("{base}/flaky")).await;
    // `/flaky` fails every first attempt: its circuit would open and defer the rest for the
    // cool-down. The breaker has tests of its own (tests/it/isolation.rs); here it stays closed.
    let mut fleet = Fleet::new(&[
        ("HOOKRELAY_RETRY_SCHEDULE", "1s"),
        ("HOOKRELAY_CIRCUIT_FAILURES", "1000000"),
    ]);
    let d0 = fleet.start(&env.config, "dispatcher");
    for role in ["dispatcher", "dispatcher"] {
        fleet.start(&env.config, role);
    }
    let s0 = fleet.start(&env.config, "scheduler");
    fleet.start(&env.config, "scheduler");
    let ids = publish(&env, "kill", EVENTS).await;

    // Kill a dispatcher mid-stream, then a scheduler while retries are firing.
    assert!(
        eventually(WAIT, || async { seen.all().len() >= EVENTS / 2 }).await,
        "traffic started"
    );
    fleet.sigkill(d0);
    assert!(
        eventually(WAIT, || async {
            seen.per_event("/flaky", Some(2)).len() >= EVENTS / 4
        })
        .await,
        "retries started"
    );
    fleet.sigkill(s0);

    let done = eventually(Duration::from_secs(180), || async {
        count(&env, "SELECT count(*) FROM deliveries WHERE state = 'succeeded'").await == 2 * EVENTS as i64
    })
    .await;
    let states: Vec<(String, i64)> = sqlx::query_as("SELECT state, count(*) FROM deliveries GROUP BY state")
        .fetch_all(&env.db)
        .await
        .expect("states");
    assert!(
        done,
        "every delivery succeeded despite the kills; states: {states:?}"
    );
    assert_eq!(count(&env, "SELECT count(*) FROM events").await, EVENTS as i64);
    let ok = seen.per_event("/ok", None);
    let retry = seen.per_event("/flaky", Some(2));
    for id in &ids {
        assert!(ok.contains_key(id), "{id} reached /ok");
        assert!(retry.contains_key(id), "{id}'s retry reached /flaky");
    }
    // At-least-once: only attempts in flight in the killed dispatcher may be sent twice.
    let repeats: usize = ok.values().chain(retry.values()).map(|n| n - 1).sum();
    eprintln!(
        "sigkill test: {repeats} repeated requests out of {}",
        seen.all().len()
    );
    assert!(
        repeats <= EVENTS,
        "repeats are bounded by what one dispatcher held: {repeats}"
    );
    drop(fleet);
    env.cleanup().await;
}

#[tokio::test]
async fn a_dispatcher_stopped_by_sigterm_under_load_exits_0_within_the_grace_and_loses_nothing() {
    const EVENTS: usize = 200;
    let env = TestEnv::new().await;
    let (base, seen) = start_receiver();
    webhook(&env, "slow", format!("{base}/slow")).await;
    // 20 slots against 200 slow requests: at SIGTERM some attempts are in flight (to finish)
    // and most events are not started yet (to hand back).
    let mut fleet = Fleet::new(&[("HOOKRELAY_DISPATCH_CONCURRENCY", "20")]);
    let d = fleet.start(&env.config, "dispatcher");
    let ids = publish(&env, "term", EVENTS).await;
    assert!(
        eventually(WAIT, || async { !seen.all().is_empty() }).await,
        "requests in flight"
    );

    let grace = Duration::from_secs(10);
    let started = std::time::Instant::now();
    let at_sigterm = seen.all().len();
    // 2 s of slack for process exit on a loaded machine.
    let status = fleet.sigterm(d, grace + Duration::from_secs(2)).await;
    let took = started.elapsed();
    let after_sigterm = seen.all().len() - at_sigterm;
    // Stop taking new work: only attempts that had a slot (20) may still start (a race with
    // the signal); the rest are handed back, not started during the grace.
    assert!(
        after_sigterm <= 20,
        "{after_sigterm} requests started after SIGTERM (concurrency 20): new work was taken"
    );
    assert_eq!(
        status.map(|s| s.code()),
        Some(Some(0)),
        "SIGTERM: exit 0 within the {grace:?} grace (waited {took:?})"
    );
    // What reached the receiver before the exit is recorded, or will be sent again.
    let before: BTreeSet<String> = seen.all().into_iter().map(|(_, id, _)| id).collect();
    let recorded_before: BTreeSet<String> =
        sqlx::query_scalar::<_, String>("SELECT DISTINCT event_id FROM attempts")
            .fetch_all(&env.db)
            .await
            .expect("attempts")
            .into_iter()
            .collect();

    fleet.start(&env.config, "dispatcher");
    fleet.start(&env.config, "scheduler");
    let done = eventually(WAIT, || async {
        count(&env, "SELECT count(*) FROM deliveries WHERE state = 'succeeded'").await == EVENTS as i64
    })
    .await;
    fleet.assert_running();
    assert!(done, "every delivery succeeded after the restart");
    let after = seen.per_event("/slow", None);
    for id in &before {
        assert!(
            recorded_before.contains(id) || after.get(id).copied().unwrap_or(0) > 1,
            "{id} was in flight at SIGTERM: neither recorded nor sent again"
        );
    }
    for id in &ids {
        assert!(after.contains_key(id), "{id} delivered");
    }
    eprintln!(
        "sigterm test: exited in {took:?}; {} of {EVENTS} reached the receiver before, {} recorded",
        before.len(),
        recorded_before.len()
    );
    drop(fleet);
    env.cleanup().await;
}

/// Reads one sample's value from an OpenMetrics text (0 when absent).
fn sample(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name_and_labels)?
                .strip_prefix(' ')?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

#[tokio::test]
async fn after_a_known_scenario_the_metrics_have_exactly_the_expected_values() {
    let env = TestEnv::with(|c| {
        c.retry_schedule = Some(hookrelay_shared::duration::DurationList(vec![
            Duration::from_secs(1),
        ]));
        // Exact counts of attempts and retries: no circuit may open and defer some of them.
        c.circuit_failures = 1_000_000;
    })
    .await;
    let (base, _seen) = start_receiver();
    webhook(&env, "ok", format!("{base}/ok")).await;
    webhook(&env, "fail", format!("{base}/fail")).await;
    let stop = CancellationToken::new();
    let dispatcher = tokio::spawn(hookrelay_dispatcher::run(env.context(), stop.clone()));
    let scheduler = tokio::spawn(hookrelay_scheduler::run(env.context(), stop.clone()));
    let (addr, server) = ops::spawn(env.context(), "127.0.0.1:0".parse().expect("addr"), stop.clone())
        .await
        .expect("binds");

    publish(&env, "metrics", 4).await;
    let ch = env.channel().await;
    env.publish_raw(&ch, "order.paid", b"{not json").await;
    env.publish_raw(&ch, "order.paid", br#"{"data": {}}"#).await;

    let scrape = || async move {
        reqwest::get(format!("http://{addr}/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("body")
    };
    let quiet = eventually(WAIT, || async {
        let t = scrape().await;
        sample(&t, "hookrelay_deliveries_exhausted_total") == 4.0
            && sample(&t, r#"hookrelay_events_consumed_total{outcome="dead_lettered"}"#) == 2.0
    })
    .await;
    if !quiet {
        let rows: Vec<(String, i32, Option<time::OffsetDateTime>)> =
            sqlx::query_as("SELECT state, attempt_count, next_attempt_at FROM deliveries")
                .fetch_all(&env.db)
                .await
                .expect("deliveries");
        let q = env
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
            .await
            .expect("queue");
        panic!(
            "the scenario did not complete: deliveries {rows:?}, {} jobs queued, now {}\n{}",
            q.message_count(),
            time::OffsetDateTime::now_utc(),
            scrape().await
        );
    }
    let t = scrape().await;
    for (name, want) in [
        (r#"hookrelay_events_consumed_total{outcome="accepted"}"#, 4.0),
        (r#"hookrelay_events_consumed_total{outcome="dead_lettered"}"#, 2.0),
        (r#"hookrelay_events_consumed_total{outcome="duplicate"}"#, 0.0),
        ("hookrelay_deliveries_created_total", 8.0),
        (
            r#"hookrelay_delivery_attempts_total{status="success",trigger="initial",status_class="2xx"}"#,
            4.0,
        ),
        (
            r#"hookrelay_delivery_attempts_total{status="failed",trigger="initial",status_class="5xx"}"#,
            4.0,
        ),
        (
            r#"hookrelay_delivery_attempts_total{status="failed",trigger="automatic",status_class="5xx"}"#,
            4.0,
        ),
        ("hookrelay_delivery_duration_seconds_count", 12.0),
        ("hookrelay_retries_scheduled_total", 4.0),
        ("hookrelay_retry_lateness_seconds_count", 4.0),
        ("hookrelay_deliveries_exhausted_total", 4.0),
        ("hookrelay_deliveries_in_flight", 0.0),
    ] {
        assert_eq!(sample(&t, name), want, "{name} in\n{t}");
    }
    let dead: f64 = t
        .lines()
        .filter(|l| l.starts_with("hookrelay_events_dead_lettered_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(dead, 2.0, "two dead letters by reason in\n{t}");
    let attempts_total: f64 = t
        .lines()
        .filter(|l| l.starts_with("hookrelay_delivery_attempts_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(attempts_total, 12.0, "no other attempt in\n{t}");
    assert_eq!(
        count(&env, "SELECT count(*) FROM attempts").await,
        12,
        "the database agrees"
    );

    stop.cancel();
    for task in [dispatcher, scheduler, server] {
        task.await.expect("joins").expect("stops cleanly");
    }
    env.cleanup().await;
}

/// Starts `hookrelay <role>` with `HOOKRELAY_METRICS_ADDR=127.0.0.1:0` and returns the
/// process (in `fleet`) and the base URL it printed.
fn start_with_ops_server(fleet: &mut Fleet, config: &hookrelay_shared::Config, role: &str) -> String {
    use std::io::BufRead;
    let mut cmd = support::command(config, &[role]);
    for (k, v) in &fleet.env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .env("HOOKRELAY_METRICS_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .expect("hookrelay starts");
    let stdout = child.stdout.take().expect("stdout");
    fleet.procs.push((role.to_owned(), child));
    fleet.logs.push(PathBuf::new());
    let mut lines = std::io::BufReader::new(stdout).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("hookrelay metrics: ")?
                .strip_suffix("/metrics")
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("hookrelay {role} did not print its metrics address"));
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    url
}

#[tokio::test]
async fn a_dispatcher_and_a_scheduler_running_alone_serve_metrics_and_probes_on_hookrelay_metrics_addr() {
    let env = TestEnv::new().await;
    let (base, _seen) = start_receiver();
    webhook(&env, "ok", format!("{base}/ok")).await;
    let mut fleet = Fleet::new(&[]);
    let dispatcher = start_with_ops_server(&mut fleet, &env.config, "dispatcher");
    let scheduler = start_with_ops_server(&mut fleet, &env.config, "scheduler");
    for url in [&dispatcher, &scheduler] {
        let health = reqwest::get(format!("{url}/healthz"))
            .await
            .expect("GET /healthz");
        assert_eq!(health.status(), 200, "{url}/healthz");
        let ready = reqwest::get(format!("{url}/readyz")).await.expect("GET /readyz");
        assert_eq!(ready.status(), 200, "{url}/readyz");
    }
    publish(&env, "alone", 3).await;
    let scrape = |url: String| async move {
        reqwest::get(format!("{url}/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("body")
    };
    let counted = eventually(WAIT, || async {
        sample(
            &scrape(dispatcher.clone()).await,
            r#"hookrelay_delivery_attempts_total{status="success",trigger="initial",status_class="2xx"}"#,
        ) == 3.0
    })
    .await;
    let text = scrape(dispatcher.clone()).await;
    assert!(counted, "the dispatcher process counted its 3 attempts:\n{text}");
    assert_eq!(
        sample(&text, r#"hookrelay_events_consumed_total{outcome="accepted"}"#),
        3.0,
        "{text}"
    );
    assert!(
        scrape(scheduler.clone())
            .await
            .contains("hookrelay_retries_pending "),
        "the scheduler exports its backlog"
    );
    for i in 0..fleet.procs.len() {
        let status = fleet.sigterm(i, Duration::from_secs(15)).await;
        assert_eq!(
            status.map(|s| s.code()),
            Some(Some(0)),
            "process {i} exits 0 on SIGTERM"
        );
    }
    drop(fleet);
    env.cleanup().await;
}
