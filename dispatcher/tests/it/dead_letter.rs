//! Messages that are not events go, unchanged, to `{ns}.events.dead` with the reason, and the
//! dispatcher keeps delivering valid events.

use hookrelay_shared::{amqp::ERROR_HEADER, testing::Receiver, testing::eventually};
use lapin::options::{BasicAckOptions, BasicGetOptions};

use crate::helpers::*;

#[tokio::test]
async fn bad_messages_are_dead_lettered_with_a_reason_and_valid_events_still_flow() {
    let env = env_with(|c| c.max_event_bytes = 1024).await;
    let rx = Receiver::start().await;
    let (hook, _) = webhook(&env, "all", &rx.url("/"), &["*"], true).await;
    let running = start(&env).await;
    let ch = env.channel().await;

    let oversize = format!(r#"{{"type":"a.b","data":{{"x":"{}"}}}}"#, "y".repeat(2000));
    let bad: Vec<(&str, Vec<u8>, &str)> = vec![
        ("malformed JSON", b"{not json".to_vec(), "not valid JSON"),
        ("missing type", br#"{"data":{}}"#.to_vec(), "missing `type`"),
        (
            "bad type",
            br#"{"type":"License","data":{}}"#.to_vec(),
            "invalid `type`",
        ),
        ("oversize", oversize.into_bytes(), "too large"),
        (
            "not UTF-8",
            b"\xff\xfe{\"type\":\"a.b\"}".to_vec(),
            "not valid UTF-8",
        ),
    ];
    env.publish_raw(&ch, "before.valid", &event("evt_before", "before.valid"))
        .await;
    for (_, body, _) in &bad {
        env.publish_raw(&ch, "x.y", body).await;
    }
    env.publish_raw(&ch, "after.valid", &event("evt_after", "after.valid"))
        .await;

    let got = wait_attempts(&env, hook.id, 2).await;
    let ids: Vec<&str> = got.iter().map(|a| a.event_id.as_str()).collect();
    assert!(
        ids.contains(&"evt_before") && ids.contains(&"evt_after"),
        "{ids:?}"
    );
    assert!(got.iter().all(|a| a.status == "success"));

    let ok = eventually(WAIT, || async {
        metric(&env, "hookrelay_events_consumed_total{outcome=\"dead_lettered\"}") >= 5.0
    })
    .await;
    assert!(ok, "{}", env.metrics.render());
    let mut dead = Vec::new();
    while let Some(msg) = ch
        .basic_get(env.names.dead_queue.as_str().into(), BasicGetOptions::default())
        .await
        .expect("basic_get")
    {
        let header = msg
            .delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get(ERROR_HEADER).cloned())
            .and_then(|v| {
                v.as_long_string()
                    .map(|s| String::from_utf8_lossy(s.as_bytes()).into_owned())
            })
            .expect("the dead letter carries x-hookrelay-error");
        dead.push((msg.delivery.data.clone(), header));
        msg.delivery.ack(BasicAckOptions::default()).await.expect("ack");
    }
    assert_eq!(
        dead.len(),
        bad.len(),
        "every bad message and nothing else is dead-lettered"
    );
    for (what, body, reason) in &bad {
        let found = dead.iter().find(|(b, _)| b == body);
        let (_, header) = found.unwrap_or_else(|| panic!("{what} is in the dead-letter queue, unchanged"));
        assert!(
            header.contains(reason),
            "{what}: header {header:?} should say {reason:?}"
        );
    }
    assert!(metric(&env, "hookrelay_events_dead_lettered_total{reason=\"too_large\"}") >= 1.0);
    assert!(!running.task.is_finished(), "the dispatcher keeps running");

    running.shutdown().await;
    env.cleanup().await;
}
