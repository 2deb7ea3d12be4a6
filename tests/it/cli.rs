//! The management commands of the `hookrelay` binary (issue 12's CLI parity): webhooks,
//! deliveries and settings, as tables by default and JSON with `--json`.

use hookrelay_shared::testing::TestEnv;
use serde_json::Value;

use crate::support::command;

/// Runs `hookrelay <args>`; its stdout, or a panic with its stderr when it failed.
fn run(env: &TestEnv, args: &[&str]) -> String {
    let out = command(&env.config, args).output().expect("hookrelay runs");
    assert!(
        out.status.success(),
        "hookrelay {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `hookrelay <args>` expecting a failure; its stderr.
fn fails(env: &TestEnv, args: &[&str]) -> String {
    let out = command(&env.config, args).output().expect("hookrelay runs");
    assert!(!out.status.success(), "hookrelay {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// `hookrelay webhooks create` with a name, URL and event types: the new webhook (its JSON).
fn create_webhook(env: &TestEnv, name: &str, url: &str, events: &str) -> Value {
    json(&run(
        env,
        &[
            "webhooks", "create", "--name", name, "--url", url, "--events", events,
        ],
    ))
}

fn id_of(created: &Value) -> String {
    created["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn webhooks_are_listed_shown_updated_rotated_and_deleted_from_the_command_line() {
    let env = TestEnv::new().await;
    let created = create_webhook(&env, "Billing", "http://127.0.0.1:9/b", "license.*");
    let id = id_of(&created);

    let table = run(&env, &["webhooks", "list"]);
    let mut lines = table.lines();
    let header = lines.next().expect("a header");
    assert!(
        header.starts_with("ID") && header.contains("NAME") && header.contains("URL"),
        "{table}"
    );
    assert!(
        lines.any(|l| l.contains(&id) && l.contains("Billing") && l.contains("enabled")),
        "{table}"
    );
    let listed = json(&run(&env, &["webhooks", "list", "--json"]));
    assert_eq!(listed["items"][0]["id"], id.as_str());

    let shown = run(&env, &["webhooks", "show", &id]);
    assert!(
        shown.contains("license.*") && shown.contains("http://127.0.0.1:9/b"),
        "{shown}"
    );

    let updated = json(&run(
        &env,
        &[
            "webhooks",
            "update",
            &id,
            "--name",
            "Billing 2",
            "--events",
            "license.*,product.created",
            "--disable",
            "--retry-policy",
            r#"{"schedule":["1s","1m"]}"#,
            "--json",
        ],
    ));
    assert_eq!(updated["name"], "Billing 2");
    assert_eq!(updated["enabled"], false);
    assert_eq!(
        updated["event_types"],
        serde_json::json!(["license.*", "product.created"])
    );
    assert_eq!(
        updated["retry_policy"],
        serde_json::json!({"schedule": ["1s", "1m"]})
    );
    let err = fails(&env, &["webhooks", "update", &id, "--events", "lic*"]);
    assert!(err.contains("--event-types"), "{err}");
    let err = fails(
        &env,
        &[
            "webhooks",
            "update",
            &id,
            "--retry-policy",
            r#"{"window":"400d"}"#,
        ],
    );
    assert!(err.contains("--retry-policy"), "{err}");

    let rotated = run(
        &env,
        &["webhooks", "rotate-secret", &id, "--expire-previous-in", "0s"],
    );
    let secret = rotated.lines().last().expect("the secret last");
    assert!(secret.starts_with("whsec_"), "{rotated}");
    assert_ne!(Some(secret), created["secret"].as_str());

    run(&env, &["webhooks", "delete", &id]);
    let err = fails(&env, &["webhooks", "show", &id]);
    assert!(err.contains("no webhook"), "{err}");

    let kinds: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, actor FROM activity WHERE webhook_id = $1::uuid ORDER BY at, id")
            .bind(&id)
            .fetch_all(&env.db)
            .await
            .expect("activity");
    let kinds: Vec<&str> = kinds
        .iter()
        .map(|(k, a)| {
            assert_eq!(a, "cli");
            k.as_str()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "webhook.disabled",
            "webhook.updated",
            "webhook.secret_rotated",
            "webhook.deleted"
        ]
    );
    env.cleanup().await;
}

#[tokio::test]
async fn settings_are_shown_and_set_from_the_command_line() {
    let env = TestEnv::new().await;
    let shown = run(&env, &["settings", "show"]);
    assert!(
        shown.contains("retention") && shown.contains("30d") && shown.contains("config"),
        "{shown}"
    );
    assert!(shown.contains("3 retries over 30m"), "{shown}");

    let set = json(&run(
        &env,
        &[
            "settings",
            "set",
            "--retention",
            "14d",
            "--retry-schedule",
            "10s,1m",
            "--json",
        ],
    ));
    assert_eq!(set["retention"], "14d");
    assert_eq!(set["retry"], serde_json::json!({"schedule": ["10s", "1m"]}));
    assert_eq!(set["updated_by"], "cli");
    let shown = json(&run(&env, &["settings", "show", "--json"]));
    assert_eq!(shown["source"]["retention"], "stored");

    let err = fails(&env, &["settings", "set", "--retention", "400d"]);
    assert!(err.contains("--retention"), "{err}");
    let err = fails(
        &env,
        &["settings", "set", "--retry-max", "3", "--retry-window", "20d"],
    );
    assert!(err.contains("--retry-window"), "{err}");
    let err = fails(&env, &["settings", "set"]);
    assert!(err.contains("--retention"), "{err}");

    let back = json(&run(
        &env,
        &[
            "settings",
            "set",
            "--retry-default",
            "--retention",
            "default",
            "--json",
        ],
    ));
    assert_eq!(back["retention"], "30d");
    assert_eq!(back["source"]["retry"], "config");
    let changes: i64 =
        sqlx::query_scalar("SELECT count(*) FROM activity WHERE kind = 'settings.changed' AND actor = 'cli'")
            .fetch_one(&env.db)
            .await
            .expect("count");
    assert_eq!(changes, 2);
    env.cleanup().await;
}

#[tokio::test]
async fn the_delivery_log_is_listed_shown_and_retried_from_the_command_line() {
    let env = TestEnv::new().await;
    let hook = id_of(&create_webhook(&env, "Log", "http://127.0.0.1:9/l", "*"));
    // One delivery with one failed attempt, as a dispatcher records them.
    sqlx::query(
        "WITH e AS (INSERT INTO events (id, received_at, event_type, category, occurred_at, body)
                    VALUES ('evt_cli', now(), 'license.assigned', 'license', now(), '{\"id\":\"evt_cli\",\"data\":{\"n\":1}}')
                    RETURNING received_at),
              d AS (INSERT INTO deliveries (id, event_id, event_received_at, webhook_id, event_type, state, attempt_count)
                    SELECT '0191d6c0-0000-7000-8000-000000000001', 'evt_cli', received_at, $1::uuid, 'license.assigned', 'failed', 1 FROM e
                    RETURNING event_received_at)
         INSERT INTO attempts (id, delivery_id, event_id, event_received_at, webhook_id, event_type, category, attempt,
                               trigger, status, request_url, request_headers, response_code, response_body, duration_ms, attempted_at)
         SELECT '0191d6c0-0000-7000-8000-0000000000a1', '0191d6c0-0000-7000-8000-000000000001', 'evt_cli', event_received_at,
                $1::uuid, 'license.assigned', 'license', 1, 'initial', 'failed', 'http://127.0.0.1:9/l',
                '{\"webhook-id\":\"evt_cli\"}', 503, 'down for maintenance', 12, now() FROM d",
    )
    .bind(&hook)
    .execute(&env.db)
    .await
    .expect("seeded");
    let attempt = "0191d6c0-0000-7000-8000-0000000000a1";

    let table = run(&env, &["deliveries", "list"]);
    assert!(
        table.lines().next().is_some_and(|h| h.contains("ATTEMPTED AT")),
        "{table}"
    );
    assert!(
        table.contains(attempt) && table.contains("Log") && table.contains("503"),
        "{table}"
    );
    let listed = json(&run(
        &env,
        &["deliveries", "list", "--status", "failed", "--json"],
    ));
    assert_eq!(listed["items"][0]["id"], attempt);
    let none = json(&run(
        &env,
        &["deliveries", "list", "--status", "success", "--json"],
    ));
    assert_eq!(none["items"], serde_json::json!([]));

    let shown = run(&env, &["deliveries", "show", attempt]);
    assert!(
        shown.contains("down for maintenance") && shown.contains("webhook-id"),
        "{shown}"
    );
    let shown = json(&run(&env, &["deliveries", "show", attempt, "--json"]));
    assert_eq!(shown["response"]["status"], 503);
    assert_eq!(shown["payload"]["data"]["n"], 1);

    let out = run(&env, &["deliveries", "retry", attempt]);
    assert!(out.contains("queued attempt 2"), "{out}");
    let retried: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM activity WHERE kind = 'delivery.retried' AND webhook_id = $1::uuid",
    )
    .bind(&hook)
    .fetch_one(&env.db)
    .await
    .expect("count");
    assert_eq!(retried, 1);
    run(&env, &["webhooks", "update", &hook, "--disable"]);
    let err = fails(&env, &["deliveries", "retry", attempt]);
    assert!(err.contains("disabled"), "{err}");
    env.cleanup().await;
}

#[tokio::test]
async fn a_test_event_is_sent_and_the_stats_shown_from_the_command_line() {
    use hookrelay_shared::testing::Receiver;
    let env = TestEnv::new().await;
    let receiver = Receiver::start().await;
    let created = create_webhook(&env, "Probe", &receiver.url("/probe"), "license.assigned");
    let id = id_of(&created);
    /// Kills the dispatcher also when an assertion fails first.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let dispatcher = Killed(crate::support::spawn(&env.config, &["dispatcher"]));

    let sent = json(&run(&env, &["webhooks", "test", &id, "--json"]));
    let event_id = sent["event_id"].as_str().expect("event_id").to_owned();
    assert!(sent["delivery_id"].is_string(), "{sent}");
    let arrived = receiver.wait_for(1, std::time::Duration::from_secs(30)).await;
    let mut stats = Value::Null;
    for _ in 0..100 {
        stats = json(&run(
            &env,
            &["webhooks", "stats", &id, "--window", "1h", "--json"],
        ));
        if stats["attempts"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let table = run(&env, &["webhooks", "stats", &id]);
    drop(dispatcher);
    assert!(arrived, "the endpoint got the test event");
    let got = receiver.received();
    assert_eq!(got[0].header("webhook-id"), Some(event_id.as_str()));
    assert_eq!(got[0].header("x-webhook-event"), Some("webhook.test"));
    assert_eq!(stats["attempts"], 1, "{stats}");
    assert_eq!(stats["succeeded"], 1, "{stats}");
    assert_eq!(stats["success_rate"], 1.0, "{stats}");
    assert_eq!(stats["circuit"], "closed", "{stats}");
    assert!(
        table.contains("attempts") && table.contains("100.00 %") && table.contains("24h"),
        "{table}"
    );
    let out = run(&env, &["webhooks", "test", &id]);
    assert!(out.contains("queued test event evt_"), "{out}");
    let tested: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM activity WHERE kind = 'webhook.tested' AND actor = 'cli' AND webhook_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&env.db)
    .await
    .expect("count");
    assert_eq!(tested, 2);

    let err = fails(&env, &["webhooks", "stats", &id, "--window", "2h"]);
    assert!(err.contains("--window"), "{err}");
    let missing = uuid::Uuid::now_v7().to_string();
    let err = fails(&env, &["webhooks", "test", &missing]);
    assert!(err.contains("no webhook"), "{err}");
    run(&env, &["webhooks", "update", &id, "--disable"]);
    let err = fails(&env, &["webhooks", "test", &id]);
    assert!(err.contains("disabled"), "{err}");
    env.cleanup().await;
}
