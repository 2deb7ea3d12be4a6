//! A dispatcher whose RabbitMQ connection is closed by the broker reconnects and carries on.

use std::process::Command;

use hookrelay_shared::testing::{Receiver, eventually};

use crate::helpers::*;

/// Closes, through `rabbitmqctl`, every connection whose name is `name`; returns how many.
fn close_connections(name: &str) -> usize {
    let out = Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "pid",
            "client_properties",
            "--quiet",
            "--no-table-headers",
        ])
        .output()
        .expect("rabbitmqctl runs (it ships with the local RabbitMQ)");
    let text = String::from_utf8_lossy(&out.stdout);
    let pids: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, props)| props.contains(&format!("{{\"connection_name\",\"{name}\"}}")))
        .map(|(pid, _)| pid.trim())
        .collect();
    for pid in &pids {
        let status = Command::new("rabbitmqctl")
            .args(["close_connection", pid, "reconnect test"])
            .status()
            .expect("rabbitmqctl close_connection");
        assert!(status.success());
    }
    pids.len()
}

#[tokio::test]
async fn a_dispatcher_reconnects_after_the_broker_closes_its_connection() {
    let env = env_with(|_| {}).await;
    let rx = Receiver::start().await;
    let (hook, _) = webhook(&env, "r", &rx.url("/"), &["*"], true).await;
    let running = start(&env).await;
    let ch = env.channel().await;
    env.publish_raw(&ch, "a.b", &event("evt_before_cut", "a.b")).await;
    wait_attempts(&env, hook.id, 1).await;

    let name = format!("hookrelay-dispatcher-{}", env.config.namespace);
    assert_eq!(
        close_connections(&name),
        1,
        "the dispatcher's connection was found and closed"
    );
    env.publish_raw(&ch, "a.b", &event("evt_after_cut", "a.b")).await;
    let got = wait_attempts(&env, hook.id, 2).await;
    assert_eq!(got[1].event_id, "evt_after_cut");
    assert!(
        eventually(WAIT, || async {
            metric(&env, "hookrelay_amqp_errors_total{op=\"connect\"}") >= 1.0
        })
        .await
    );
    assert!(!running.task.is_finished(), "the dispatcher keeps running");
    running.shutdown().await;
    env.cleanup().await;
}
