//! The deploy files are valid and agree with the binary: YAML/JSON parse, compose and
//! Kubernetes settings, promtool, and every metric named in alerts and dashboard is exported.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use hookrelay_shared::{duration::parse_duration, metrics::Metrics};
use serde::Deserialize;
use serde_norway::Value as Yaml;

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
